"""`orbox quantize encoder` end to end on tiny BERT and XLM-R models: bundles, roles, fallbacks, loader."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from encoder_data.fixtures import profile_toml

from hw_profiles import load_profile
from inference.encoder import EncoderRuntimeError, load_encoder
from orbox.cli import cli
from primitives.artifacts import load_manifest
from primitives.signing import generate_keypair, verify_bundle

pytestmark = pytest.mark.xdist_group("encoder_tiny")
# Tiny models are dominated by per-op overhead, so INT8 is not faster there; the latency gate is
# exercised by the fallback tests below with an unreachable margin instead.
NO_LATENCY_GATE = ["--min-speedup", "0"]


def graph_summary(path):
    """(op type counts, initializer dtype counts) of an ONNX file."""
    import onnx

    graph = onnx.load(str(path)).graph
    dtypes = Counter(onnx.TensorProto.DataType.Name(init.data_type) for init in graph.initializer)
    return Counter(node.op_type for node in graph.node), dtypes


def quantize(model, out, *extra, profile="server-avx512-vnni"):
    args = ["quantize", "encoder", "--model", str(model), "--profile", str(profile), "--out", str(out), *extra]
    return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys") / "vendor")


@pytest.fixture(scope="module")
def bundle(tiny_bert, tiny_reranker, keys, tmp_path_factory):
    """One signed bundle holding both roles, as the box receives it."""
    out = tmp_path_factory.mktemp("bundle") / "b"
    first = quantize(tiny_bert, out, *NO_LATENCY_GATE)
    assert first.exit_code == 0, first.output
    second = quantize(tiny_reranker, out, *NO_LATENCY_GATE, "--sign-key", str(keys[0]))
    assert second.exit_code == 0, second.output
    return out


def test_bundle_holds_both_roles_with_gates_recorded(bundle, keys):
    assert verify_bundle(bundle, keys[1]) == []
    manifest = load_manifest(bundle)
    sections = manifest["sections"]["encoder"]
    assert set(sections) == {"embedding", "reranker"}
    embedding = sections["embedding"]
    assert embedding["chosen"] == "u8s8-per-channel"
    assert embedding["parity"]["passed"] and embedding["parity"]["token_ids_identical"]
    assert embedding["attempts"][-1]["verdicts"] == {"min_cosine": True, "mean_cosine": True,
                                                     "top5_agreement": True, "speedup": True}
    assert embedding["inputs"]["model.safetensors"]["size"] > 0
    model_entry = manifest["artifacts"]["encoder/embedding/model.onnx"]
    assert (model_entry["kind"], model_entry["role"], model_entry["quant_type"]) == ("onnx", "embedding",
                                                                                     "u8s8-per-channel")
    assert manifest["artifacts"]["encoder/reranker/model.onnx"]["role"] == "reranker"
    ops, weight_types = graph_summary(bundle / "encoder" / "embedding" / "model.onnx")
    assert ops["MatMulInteger"] >= 2 * 6 and weight_types["INT8"] > 0  # u8s8: S8 weights, integer MatMuls
    assert {"top1_agreement", "min_kendall_tau"} <= set(sections["reranker"]["attempts"][0]["metrics"])
    assert not any(p.name.startswith(".encoder-staging") for p in bundle.iterdir())


def test_loader_embeds_and_reranks_from_the_bundle(bundle):
    embedder = load_encoder(bundle, load_profile("server-avx512-vnni"), role="embedding")
    vectors = embedder.embed(["腹腔镜胆囊切除术", "laparoscopic cholecystectomy"])
    assert vectors.shape == (2, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    manifest = load_manifest(bundle)
    assert embedder.sha256 == manifest["artifacts"]["encoder/embedding/model.onnx"]["sha256"]
    assert embedder.model_id == "tiny-bert" and embedder.dim == 64 and embedder.max_seq_length == 48
    reranker = load_encoder(bundle, role="reranker")
    scores = reranker.rerank("antibiotic prophylaxis", ["cefazolin before incision", "drain placement", "x"])
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))


def test_loader_refuses_a_flipped_byte(bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    model = copy / "encoder" / "embedding" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(EncoderRuntimeError, match=r"corrupted encoder: .*model.onnx: sha256"):
        load_encoder(copy)


def test_loader_refuses_a_bundle_for_another_profile(bundle):
    with pytest.raises(EncoderRuntimeError, match="built for profile 'server-avx512-vnni'"):
        load_encoder(bundle, load_profile("mini-avx2"))


def test_latency_gate_failure_falls_back_to_fp32_and_says_why(tiny_bert, tmp_path):
    result = quantize(tiny_bert, tmp_path / "b", "--min-speedup", "1000")
    assert result.exit_code == 0, result.output
    # the measured milliseconds are shown to the vendor, not written into the manifest
    assert re.search(r"fail u8s8-per-channel: .* latency \d+\.\d ms vs fp32 \d+\.\d ms \(\d+\.\d\dx\)",
                     result.output), result.output
    section = load_manifest(tmp_path / "b")["sections"]["encoder"]["embedding"]
    names = [a["name"] for a in section["attempts"]]
    assert names[:3] == ["u8s8-per-channel", "reduce_range-per-channel", "u8u8-per-channel"]
    assert any("fp32-outliers" in n for n in names) and any("-exclude" in n for n in names)
    assert names[-1] == section["chosen"] == "fp32"
    ops, _ = graph_summary(tmp_path / "b" / "encoder" / "embedding" / "model.onnx")
    assert not ops.keys() & {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear"}
    assert section["reason"].startswith("fp32 fallback: u8s8-per-channel failed speedup")
    assert load_encoder(tmp_path / "b").embed(["x"]).shape == (1, 64)


def test_failed_gates_without_fp32_fallback_publish_nothing(tiny_bert, tmp_path):
    out = tmp_path / "b"
    result = quantize(tiny_bert, out, "--min-speedup", "1000", "--no-fp32-fallback")
    assert result.exit_code != 0
    assert "nothing published" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_failed_rebuild_keeps_the_previous_bundle(bundle, tiny_bert, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    before = (copy / "manifest.json").read_bytes()
    result = quantize(tiny_bert, copy, "--min-speedup", "1000", "--no-fp32-fallback")
    assert result.exit_code != 0
    assert (copy / "manifest.json").read_bytes() == before
    assert verify_bundle(copy) == []


def test_identical_inputs_give_byte_identical_bundles(tiny_bert, tmp_path, monkeypatch):
    """Same inputs + SOURCE_DATE_EPOCH: every file, manifest.json included, is byte-identical, although the
    latency gate ran (and measured different milliseconds) in both builds."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    trees = []
    for name in ("a", "b"):
        result = quantize(tiny_bert, tmp_path / name, *NO_LATENCY_GATE)
        assert result.exit_code == 0, result.output
        root = tmp_path / name
        trees.append({p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})
    assert trees[0].keys() == trees[1].keys()
    assert trees[0]["manifest.json"] == trees[1]["manifest.json"]
    assert trees[0] == trees[1]
    section = json.loads(trees[0]["manifest.json"])["sections"]["encoder"]["embedding"]
    assert section["attempts"][0]["verdicts"]["speedup"] is True  # the latency gate was applied and recorded
    assert section["thresholds"]["min_speedup"] == 0.0


def test_openvino_profile_builds_static_qdq_and_nncf_ir(tiny_bert, tmp_path):
    profile = profile_toml(tmp_path, "core-ultra-npu", openvino_device="CPU")  # no NPU on the build machine
    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text("\n".join(json.dumps({"text": f"术后第{i}天 patient day {i}"}) for i in range(8)) + "\n")
    result = quantize(tiny_bert, tmp_path / "b", *NO_LATENCY_GATE, "--calibration", str(calibration),
                      profile=profile)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "b")
    section = manifest["sections"]["encoder"]["embedding"]
    assert section["chosen"].startswith("qdq_s8s8")
    assert section["calibration"] == {"source": "calibration.jsonl", "items": 8}
    ops, weight_types = graph_summary(tmp_path / "b" / "encoder" / "embedding" / "model.onnx")
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0 and weight_types["INT8"] > 0  # static QDQ S8S8
    assert section["openvino"]["name"] == "openvino-int8-nncf" and section["openvino"]["passed"] is True
    ir = manifest["artifacts"]["encoder/embedding/openvino/model.xml"]
    assert (ir["kind"], ir["quant_type"]) == ("openvino-ir", "openvino-int8-nncf")
    assert 'type="FakeQuantize"' in (tmp_path / "b" / "encoder" / "embedding" / "openvino" / "model.xml").read_text()
    encoder = load_encoder(tmp_path / "b", load_profile(profile))
    assert encoder.backend_name == "openvino"
    assert encoder.embed(["腹腔镜"]).shape == (1, 64)
