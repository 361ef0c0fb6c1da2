"""Bad input: each case fails with a message naming the file/field, exit code 1, and no partial output."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal

import pytest
from click.testing import CliRunner
from conftest import orbox_cli

from orbox.cli import cli
from primitives.artifacts import load_manifest
from quantize.manifest import update_manifest
from quantize.tiny_models import build_tiny_llm


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("bad-input") / "model", "qwen2")


@pytest.fixture
def model(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "model")


def run_llm(model_dir, out_dir, *extra, profile="dev"):
    args = ["quantize", "llm", "--model", str(model_dir), "--profile", profile, "--out", str(out_dir),
            "--types", "q8_0", *extra]
    return CliRunner().invoke(cli, args)


@pytest.fixture
def sibling_bundle(tmp_path):
    """A bundle the encoder tool already wrote into: a failed LLM run must leave it byte for byte."""
    bundle = tmp_path / "bundle"
    (bundle / "encoder").mkdir(parents=True)
    (bundle / "encoder" / "model.onnx").write_bytes(b"onnx")
    update_manifest(bundle, "dev", "encoder", {"note": "from the sibling tool"},
                    {"encoder/model.onnx": {"kind": "onnx", "role": "embedding"}})
    return bundle


def snapshot(bundle):
    return {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}


def assert_bundle_kept(bundle, before):
    assert snapshot(bundle) == before  # no temp dir, no llm/, manifest untouched
    assert "llm" not in load_manifest(bundle)["sections"]


def assert_failed_cleanly(result, out_dir, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not out_dir.exists(), list(out_dir.rglob("*"))


def test_missing_safetensors(model, tmp_path):
    (model / "model.safetensors").unlink()
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "no model.safetensors")


def test_truncated_safetensors(model, tmp_path):
    path = model / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "model.safetensors", "truncated")


def test_garbage_safetensors_header(model, tmp_path):
    (model / "model.safetensors").write_bytes(b"\xff" * 64)
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "header length", "corrupt")


def test_tensor_shape_disagrees_with_config(model, tmp_path):
    config = json.loads((model / "config.json").read_text())
    config["intermediate_size"] = 768
    (model / "config.json").write_text(json.dumps(config))
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out",
                          "model.layers.0.mlp.gate_proj.weight", "[512, 256]", "intermediate_size=768", "[768, 256]")


def test_unsupported_architecture(model, tmp_path):
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["PhiForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "'PhiForCausalLM' is not supported",
                          "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM")


def test_unknown_pre_tokenizer(model, tmp_path):
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["pre_tokenizer"] = {"type": "Whitespace"}
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "tokenizer.json", "pre_tokenizer",
                          "Whitespace", "llama-bpe")


def test_tokenizer_class_transformers_cannot_load(model, tmp_path):
    path = model / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "tokenizer_class": "FooTokenizer"}))
    assert_failed_cleanly(run_llm(model, tmp_path / "out"), tmp_path / "out", "gate: tokenizer parity",
                          "a gate could not run", "FooTokenizer", "nothing was published")


def test_unknown_type_name(model, tmp_path):
    result = run_llm(model, tmp_path / "out", "--types", "q3_k_xs")
    assert_failed_cleanly(result, tmp_path / "out", "q3_k_xs", "q4_k_m")


def test_unreadable_sign_key_is_refused_before_anything_is_written(model, sibling_bundle, tmp_path):
    before = snapshot(sibling_bundle)
    key = tmp_path / "vendor.key"
    key.write_text("not a key\n")
    result = run_llm(model, sibling_bundle, "--sign-key", str(key))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "vendor.key" in result.output and "PKCS#8" in result.output, result.output
    assert_bundle_kept(sibling_bundle, before)


def test_bundle_of_another_profile_is_left_untouched(model, sibling_bundle):
    before = snapshot(sibling_bundle)
    result = run_llm(model, sibling_bundle, profile="mini-avx2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "bundle is for profile 'dev'" in result.output and "'mini-avx2'" in result.output, result.output
    assert_bundle_kept(sibling_bundle, before)


@pytest.mark.parametrize(("toml", "fragments"), [
    ("[kld_max]\nq4_km = 0.01\n", ["[kld_max]", "'q4_km'", "q4_k_m"]),
    ("kld_min_tokens = -5\n", ["kld_min_tokens", "greater than 0", "-5"]),
    ("[top1_min]\nq8_0 = true\n", ["[top1_min]", "positive numbers", "True"]),
    ("kld_max = 3\n", ["[kld_max]", "table", "3"]),
    ("generation_max_new_tokens = \n", ["thresholds.toml", "cannot read"]),
])
def test_bad_thresholds_file(model, tmp_path, toml, fragments):
    path = tmp_path / "thresholds.toml"
    path.write_text(toml)
    assert_failed_cleanly(run_llm(model, tmp_path / "out", "--thresholds", str(path)), tmp_path / "out",
                          "thresholds.toml", *fragments)


def test_out_under_a_file(model, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = run_llm(model, tmp_path / "afile" / "bundle")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--out" in result.output and "afile/bundle" in result.output and "Not a directory" in result.output
    assert (tmp_path / "afile").read_text() == "x"


def test_empty_eval_text(model, tmp_path):
    empty = tmp_path / "eval.txt"
    empty.write_text("  \n")
    assert_failed_cleanly(run_llm(model, tmp_path / "out", "--eval-text", str(empty)), tmp_path / "out",
                          "--eval-text", "eval.txt", "only white space")


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_disk_filling_during_write_publishes_nothing_and_keeps_the_bundle(model, sibling_bundle):
    bundle = sibling_bundle
    before = snapshot(bundle)
    child = orbox_cli("quantize", "llm", "--model", str(model), "--profile", "dev", "--out", str(bundle),
                      "--types", "q8_0", preexec_fn=_limit_file_size, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert child.returncode == 1, child.stderr
    assert "cannot write GGUF" in child.stderr and "nothing was published" in child.stderr
    assert "Traceback" not in child.stderr
    assert_bundle_kept(bundle, before)
