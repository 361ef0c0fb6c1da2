"""End to end: a tiny model trained for about a minute → gated, signed bundle that llama.cpp serves."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from orbox.cli import cli
from primitives.artifacts import load_manifest
from primitives.signing import canonical_json, generate_keypair, verify_bundle
from quantize.tiny_models import build_tiny_llm

pytestmark = pytest.mark.xdist_group("quantize_llm_trained")
TYPES = ["q8_0", "q6_k", "q5_k_m", "q4_k_m"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("trained") / "clinical-tiny", "qwen2", train_steps=300)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("keys") / "vendor"
    result = CliRunner().invoke(cli, ["keygen", str(prefix)])
    assert result.exit_code == 0, result.output
    return prefix.with_name("vendor.key"), prefix.with_name("vendor.pub")


def test_keygen_writes_ed25519_pem_pair_and_never_overwrites(keys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    key_path, pub_path = keys
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo
    assert key_path.stat().st_mode & 0o777 == 0o600
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pub_path.read_bytes())
    assert isinstance(private, Ed25519PrivateKey) and isinstance(public, Ed25519PublicKey)
    public.verify(private.sign(b"orbox"), b"orbox")
    before = key_path.read_bytes()
    again = CliRunner().invoke(cli, ["keygen", str(key_path.with_suffix(""))])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    assert key_path.read_bytes() == before


def build(model_dir, out_dir, *extra):
    args = ["quantize", "llm", "--model", str(model_dir), "--profile", "dev", "--out", str(out_dir), *extra]
    return CliRunner().invoke(cli, args, env={"SOURCE_DATE_EPOCH": "1700000000"})


@pytest.fixture(scope="module")
def bundle(trained, keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "signed"
    result = build(trained, out, "--types", ",".join(TYPES), "--sign-key", str(keys[0]))
    assert result.exit_code == 0, result.output
    return out


def test_bundle_is_signed_and_every_artifact_verifies(bundle, keys):
    assert verify_bundle(bundle, keys[1]) == []
    manifest = load_manifest(bundle)
    entries = {path: entry for path, entry in manifest["artifacts"].items() if entry["section"] == "llm"}
    assert sorted(e["quant_type"] for e in entries.values()) == sorted(TYPES)
    assert all(e["kind"] == "gguf" and e["role"] == "llm" and len(e["sha256"]) == 64 for e in entries.values())
    assert manifest["created"] == "2023-11-14T22:13:20Z"
    runner = CliRunner().invoke(cli, ["quantize", "verify", str(bundle), "--pubkey", str(keys[1])])
    assert runner.exit_code == 0, runner.output


def test_verify_catches_a_changed_file_a_changed_manifest_and_a_foreign_key(bundle, keys, tmp_path):
    def verify(path, pubkey):
        return CliRunner().invoke(cli, ["quantize", "verify", str(path), "--pubkey", str(pubkey)])

    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    gguf = next((tampered / "llm").glob("*q4_k_m.gguf"))
    data = bytearray(gguf.read_bytes())
    data[-1] ^= 0x01
    gguf.write_bytes(bytes(data))
    result = verify(tampered, keys[1])
    assert result.exit_code == 1 and f"llm/{gguf.name}: sha256" in result.output, result.output

    edited = shutil.copytree(bundle, tmp_path / "edited")
    manifest = edited / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"dev"', b'"mini-avx2"', 1))
    result = verify(edited, keys[1])
    assert result.exit_code == 1 and "signature does not match" in result.output, result.output

    _, other_pub = generate_keypair(tmp_path / "other")
    result = verify(bundle, other_pub)
    assert result.exit_code == 1 and "signature does not match" in result.output, result.output


def test_gguf_metadata_traces_back_to_the_manifest_record(bundle):
    from gguf import GGUFReader

    section = load_manifest(bundle)["sections"]["llm"]
    record_sha = hashlib.sha256(canonical_json(section["record"])).hexdigest()
    assert section["record_sha256"] == record_sha
    for path in (bundle / "llm").glob("*.gguf"):
        assert GGUFReader(path).fields["orbox.build_record_sha256"].contents() == record_sha
    record = section["record"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(
        record["source"]["files"])
    assert {"llama-cpp-python", "llama.cpp", "gguf", "torch", "transformers"} <= set(record["tools"])
    assert record["profile"] == "dev" and record["parameters"]["types"] == TYPES


def test_every_gate_is_recorded_with_threshold_and_verdict(bundle):
    gates = load_manifest(bundle)["sections"]["llm"]["gates"]
    assert gates["tokenizer_parity"]["verdict"] == "pass"
    assert gates["converter_parity"]["metrics"]["top1_agreement"] >= 0.995
    assert gates["converter_parity"]["thresholds"]["max_rel_error"] > 0
    quant = gates["quantization"]
    assert quant["verdict"] == "pass" and quant["metrics"]["scored_tokens"] >= 2048
    klds = [quant["metrics"][t]["mean_kld"] for t in TYPES]
    assert klds == sorted(klds) and len(set(klds)) == 4 and klds[0] > 0
    assert all(quant["thresholds"][t]["max_mean_kld"] > 0 for t in TYPES)
    assert gates["control_tokens"]["verdict"] == "pass" and gates["generation_parity"]["verdict"] == "pass"
    assert gates["generation_parity"]["thresholds"]["max_new_tokens"] == 256
    smoke = gates["smoke"].values()
    assert all(v["verdict"] == "pass" and len(v["metrics"]["departs_from_f32_at"]) == 3 for v in smoke)
    assert set(gates["structural"]) == {"reference-f32", *TYPES}


def test_tensor_type_histogram_shows_real_k_quants(bundle):
    histograms = load_manifest(bundle)["sections"]["llm"]["tensor_types"]
    q4 = next(h for path, h in histograms.items() if path.endswith("q4_k_m.gguf"))
    assert q4["fallbacks"] == [] and q4["types"]["Q4_K"] > 0 and q4["types"]["F32"] > 0


def test_published_file_runs_in_llama_cpp_and_answers_deterministically(bundle):
    import llama_cpp

    path = next((bundle / "llm").glob("*q4_k_m.gguf"))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False, seed=1)
    messages = [{"role": "user", "content": "When should the urinary catheter be removed?"}]
    answers = [llm.create_chat_completion(messages, temperature=0.0, max_tokens=32)["choices"][0] for _ in range(2)]
    assert answers[0]["message"]["content"] == answers[1]["message"]["content"]
    assert answers[0]["finish_reason"] == "stop"


def test_same_inputs_give_byte_identical_ggufs_and_manifest(trained, bundle, keys, tmp_path):
    again = tmp_path / "again"
    result = build(trained, again, "--types", ",".join(TYPES), "--sign-key", str(keys[0]))
    assert result.exit_code == 0, result.output
    assert (again / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    for path in (bundle / "llm").glob("*.gguf"):
        assert (again / "llm" / path.name).read_bytes() == path.read_bytes()


def test_failed_gate_publishes_nothing_and_reports_why(trained, tmp_path):
    strict = tmp_path / "strict.toml"
    strict.write_text("[kld_max]\nq4_k_m = 1e-9\n")
    out = tmp_path / "out"
    result = build(trained, out, "--types", "q4_k_m", "--thresholds", str(strict))
    assert result.exit_code == 1
    assert "FAIL quantization" in result.output and "q4_k_m: mean KLD" in result.output
    assert "nothing was published" in result.output
    assert not out.exists()


def test_planner_chooses_the_type_and_a_rerun_replaces_our_earlier_files(trained, bundle, tmp_path):
    from hw_profiles import load_profile, plan_llm

    out = shutil.copytree(bundle, tmp_path / "replanned")
    result = build(trained, out, "--context", "512")
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    record = manifest["sections"]["llm"]["record"]
    expected = plan_llm(json.loads((trained / "config.json").read_text()), load_profile("dev"), 512)
    assert record["parameters"]["types_from"] == "planner"
    assert record["plan"]["chosen_type"] == expected.chosen_type and record["plan"]["context"] == 512
    assert {row["type"] for row in record["plan"]["rows"]} == {row.gguf_type for row in expected.rows}
    assert [e["quant_type"] for e in manifest["artifacts"].values()] == [expected.chosen_type]
    # The four files of the earlier run are gone; the old signature no longer covers the manifest.
    assert [p.name for p in (out / "llm").iterdir()] == [f"clinical-tiny-{expected.chosen_type}.gguf"]
    assert not (out / "manifest.json.sig").exists() and verify_bundle(out) == []
