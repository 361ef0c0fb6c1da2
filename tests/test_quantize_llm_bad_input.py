"""Bad input: each case fails with a message naming the file/field, exit code 1, and no partial output."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from orbox.cli import cli
from quantize.manifest import MANIFEST_NAME, load_manifest, update_manifest
from quantize.tiny_models import build_tiny_llm


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("bad-input") / "model", "qwen2")


@pytest.fixture
def model(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "model")


def run_llm(model_dir, out_dir, *extra):
    args = ["quantize", "llm", "--model", str(model_dir), "--profile", "dev", "--out", str(out_dir),
            "--types", "q8_0", *extra]
    return CliRunner().invoke(cli, args)


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


def test_unknown_type_name(model, tmp_path):
    result = run_llm(model, tmp_path / "out", "--types", "q3_k_xs")
    assert_failed_cleanly(result, tmp_path / "out", "q3_k_xs", "q4_k_m")


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_disk_filling_during_write_publishes_nothing_and_keeps_the_bundle(model, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "encoder").mkdir()
    (bundle / "encoder" / "model.onnx").write_bytes(b"onnx")
    update_manifest(bundle, "dev", "encoder", {"note": "from the sibling tool"},
                    {"encoder/model.onnx": {"kind": "onnx", "role": "embedding"}})
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    command = [sys.executable, "-m", "orbox", "quantize", "llm", "--model", str(model), "--profile", "dev",
               "--out", str(bundle), "--types", "q8_0"]
    child = subprocess.run(command, capture_output=True, text=True, preexec_fn=_limit_file_size,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
    assert child.returncode == 1, child.stderr
    assert "cannot write GGUF" in child.stderr and "nothing was published" in child.stderr
    assert "Traceback" not in child.stderr
    after = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert after == before  # no temp dir, no llm/, manifest untouched
    assert "llm" not in load_manifest(bundle)["sections"]
    assert (bundle / MANIFEST_NAME).is_file()
