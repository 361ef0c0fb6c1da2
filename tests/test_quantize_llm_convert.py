"""Converter: every supported architecture, checked against transformers and llama.cpp (real files, no mocks)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest

from quantize.llm import architecture as llm_arch
from quantize.llm.architecture import required_keys
from quantize.llm.export import convert_checkpoint
from quantize.llm.gates import Thresholds
from quantize.llm.gates.converter_parity import converter_parity_gate
from quantize.llm.gates.runtime import open_llama
from quantize.llm.gates.structural import structural_gate
from quantize.llm.gates.tokenizer_parity import tokenizer_parity_gate
from quantize.llm.quantize import quantize_gguf, type_histogram
from quantize.llm.source import CheckpointError
from quantize.tiny_models import build_tiny_llm

ARCHS = ["llama", "mistral", "qwen2", "qwen3"]
TEXT = "Patient is a 64-year-old male admitted for cholecystectomy. 患者男性，64岁，血压132/84毫米汞柱。"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-archs")
    return {arch: build_tiny_llm(root / arch, arch) for arch in ARCHS}


def _ids(gguf_path):
    return open_llama(gguf_path, vocab_only=True).tokenize(TEXT.encode(), add_bos=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_converted_model_matches_transformers_and_hf_tokenizer(models, arch, tmp_path):
    model_dir = models[arch]
    result = convert_checkpoint(model_dir, tmp_path / "f32.gguf", "f32", {"orbox.build_record_sha256": "abc"})

    structural = structural_gate(result.path, required_keys(result.arch), result.tensor_names,
                                 {"orbox.build_record_sha256": "abc"})
    assert structural.passed, structural.problems
    tokenizer = tokenizer_parity_gate(result.path, model_dir)
    assert tokenizer.passed, tokenizer.problems
    assert tokenizer.metrics["mismatched_texts"] == 0
    parity = converter_parity_gate(result.path, model_dir, _ids(result.path), Thresholds(), threads=2)
    assert parity.passed, parity.problems
    assert parity.metrics["max_rel_error"] < 1e-4


def test_architecture_specifics_reach_the_gguf(models, tmp_path):
    from gguf import GGUFReader

    names = {}
    for arch in ARCHS:
        path = convert_checkpoint(models[arch], tmp_path / f"{arch}.gguf", "f16").path
        names[arch] = {t.name for t in GGUFReader(path).tensors}
    assert "blk.0.attn_q.bias" in names["qwen2"] and "blk.0.attn_q.bias" not in names["llama"]
    assert "blk.0.attn_q_norm.weight" in names["qwen3"] and "blk.0.attn_k_norm.weight" in names["qwen3"]
    assert "rope_freqs.weight" in names["llama"]  # llama3 rope scaling
    assert "output.weight" not in names["qwen2"]  # tied embeddings reuse token_embd
    assert "output.weight" in names["mistral"]
    reader = GGUFReader(tmp_path / "mistral.gguf")
    assert reader.fields["tokenizer.ggml.model"].contents() == "llama"
    assert reader.fields["llama.attention.head_count_kv"].contents() == 2  # GQA


def test_wrong_qk_permutation_is_caught_by_converter_parity(models, tmp_path, monkeypatch):
    spec = llm_arch.ARCHITECTURES["LlamaForCausalLM"]
    monkeypatch.setitem(llm_arch.ARCHITECTURES, "LlamaForCausalLM", dataclasses.replace(spec, permute_qk=False))
    path = convert_checkpoint(models["llama"], tmp_path / "bad.gguf", "f32").path
    parity = converter_parity_gate(path, models["llama"], _ids(path), Thresholds(), threads=2)
    assert not parity.passed
    assert "relative logit error" in parity.problems[0]


def test_sharded_bf16_checkpoint_converts_like_the_single_file(tmp_path):
    single = build_tiny_llm(tmp_path / "single", "qwen2", dtype="bfloat16")
    sharded = build_tiny_llm(tmp_path / "sharded", "qwen2", dtype="bfloat16", max_shard_size="400KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    a = convert_checkpoint(single, tmp_path / "a.gguf", "bf16").path
    b = convert_checkpoint(sharded, tmp_path / "b.gguf", "bf16").path
    assert sha256(a) == sha256(b)  # bf16 -> bf16 is lossless and independent of sharding


def test_conversion_and_quantization_are_byte_identical_on_rerun(models, tmp_path):
    first = convert_checkpoint(models["qwen3"], tmp_path / "1.gguf", "f16").path
    second = convert_checkpoint(models["qwen3"], tmp_path / "2.gguf", "f16").path
    assert sha256(first) == sha256(second)
    quantize_gguf(first, tmp_path / "1q.gguf", "q4_k_m", threads=2)
    quantize_gguf(second, tmp_path / "2q.gguf", "q4_k_m", threads=2)
    assert sha256(tmp_path / "1q.gguf") == sha256(tmp_path / "2q.gguf")
    histogram = type_histogram(tmp_path / "1q.gguf", "q4_k_m")
    assert histogram["fallbacks"] == []  # 256-multiple rows: the k-quant kernels really ran
    assert {"Q4_K", "Q6_K"} <= set(histogram["types"])


def test_unsupported_architecture_lists_supported_ones(models, tmp_path):
    model_dir = shutil.copytree(models["qwen2"], tmp_path / "gpt")
    config = json.loads((model_dir / "config.json").read_text())
    config["architectures"] = ["GPTNeoXForCausalLM"]
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="GPTNeoXForCausalLM.*supported: LlamaForCausalLM, Mistral"):
        convert_checkpoint(model_dir, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
