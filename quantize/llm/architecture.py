"""Architecture dispatch: HF config → GGUF hyper-parameters and the exact tensor plan.

One `ArchSpec` per supported `architectures[0]`. The plan lists every GGUF tensor with its HF source,
expected HF shape and transform, so the converter checks shapes against the config before writing a
byte, and the structural gate knows the expected tensor set. Llama/Mistral Q and K rows are permuted
from HF's half-split RoPE layout to llama.cpp's interleaved one; a wrong permutation does not crash,
it only shifts logits, which is why the converter-parity gate exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np

from quantize.llm.source import CheckpointError

T = gguf.MODEL_TENSOR


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: str
    permute_qk: bool
    qkv_bias: bool  # Qwen2 always carries q/k/v biases
    qk_norm: bool  # Qwen3 normalises q and k per head


ARCHITECTURES: dict[str, ArchSpec] = {
    "LlamaForCausalLM": ArchSpec("llama", permute_qk=True, qkv_bias=False, qk_norm=False),
    "MistralForCausalLM": ArchSpec("llama", permute_qk=True, qkv_bias=False, qk_norm=False),
    "Qwen2ForCausalLM": ArchSpec("qwen2", permute_qk=False, qkv_bias=True, qk_norm=False),
    "Qwen3ForCausalLM": ArchSpec("qwen3", permute_qk=False, qkv_bias=False, qk_norm=True),
}


@dataclass(frozen=True)
class HParams:
    arch: str
    spec: ArchSpec
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    context: int
    rms_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    tied: bool
    attention_bias: bool


@dataclass(frozen=True)
class TensorPlan:
    """One GGUF tensor: its name, HF source, expected HF shape and how to transform the data."""

    gguf_name: str
    hf_name: str | None  # None: computed (rope_freqs)
    hf_shape: tuple[int, ...]
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def is_matrix(self) -> bool:
        return len(self.hf_shape) == 2


def _field(config: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = config.get(key, default)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (kind is int and not isinstance(value, int)) or value <= 0:
        raise CheckpointError(f"config.json: field {key!r} must be a positive {kind.__name__}, found {value!r}")
    return kind(value)


def read_hparams(config: dict[str, Any]) -> HParams:
    """Validate config.json for one of the supported architectures."""
    archs = config.get("architectures") or [None]
    arch = archs[0]
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"config.json: architecture {arch!r} is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    hidden = _field(config, "hidden_size", int)
    heads = _field(config, "num_attention_heads", int)
    head_dim = config.get("head_dim") or hidden // heads
    rope_scaling = config.get("rope_scaling")
    if rope_scaling is not None:
        kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
        if kind not in ("llama3", "linear", "default"):
            raise CheckpointError(
                f"config.json: rope_scaling type {kind!r} is not supported; expected 'llama3', 'linear' or null"
            )
        if kind == "default":
            rope_scaling = None
    return HParams(
        arch=arch,
        spec=ARCHITECTURES[arch],
        vocab=_field(config, "vocab_size", int),
        hidden=hidden,
        intermediate=_field(config, "intermediate_size", int),
        layers=_field(config, "num_hidden_layers", int),
        heads=heads,
        kv_heads=_field(config, "num_key_value_heads", int, heads),
        head_dim=int(head_dim),
        context=_field(config, "max_position_embeddings", int),
        rms_eps=_field(config, "rms_norm_eps", float),
        rope_theta=_field(config, "rope_theta", float, 10000.0),
        rope_scaling=rope_scaling,
        tied=bool(config.get("tie_word_embeddings", False)),
        attention_bias=bool(config.get("attention_bias", False)),
    )


def permute_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores each head's rotary pairs as two halves; llama.cpp expects them interleaved."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)
    )


def llama3_rope_factors(hp: HParams) -> np.ndarray:
    """Per-frequency divisors that llama.cpp applies as `rope_freqs` for llama3-style scaling."""
    scaling = hp.rope_scaling or {}
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < original / high:
            factors.append(1.0)
        elif wavelen > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def _name(kind: gguf.MODEL_TENSOR, suffix: str = "weight", bid: int | None = None) -> str:
    return gguf.TENSOR_NAMES[kind].format(bid=bid) + "." + suffix


def tensor_plan(hp: HParams, available: set[str]) -> list[TensorPlan]:
    """The GGUF tensors to write, in file order, each tied to its HF source and expected shape."""
    q_rows, kv_rows = hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim
    q_perm = (lambda w: permute_rope(w, hp.heads)) if hp.spec.permute_qk else None
    k_perm = (lambda w: permute_rope(w, hp.kv_heads)) if hp.spec.permute_qk else None
    plan = [TensorPlan(_name(T.TOKEN_EMBD), "model.embed_tokens.weight", (hp.vocab, hp.hidden))]
    if hp.rope_scaling and hp.rope_scaling.get("rope_type", hp.rope_scaling.get("type")) == "llama3":
        plan.append(TensorPlan(_name(T.ROPE_FREQS), None, (hp.head_dim // 2,)))
    with_bias = hp.spec.qkv_bias or hp.attention_bias
    for i in range(hp.layers):
        hf = f"model.layers.{i}."
        plan += [
            TensorPlan(_name(T.ATTN_NORM, bid=i), hf + "input_layernorm.weight", (hp.hidden,)),
            TensorPlan(_name(T.ATTN_Q, bid=i), hf + "self_attn.q_proj.weight", (q_rows, hp.hidden), q_perm),
            TensorPlan(_name(T.ATTN_K, bid=i), hf + "self_attn.k_proj.weight", (kv_rows, hp.hidden), k_perm),
            TensorPlan(_name(T.ATTN_V, bid=i), hf + "self_attn.v_proj.weight", (kv_rows, hp.hidden)),
        ]
        if with_bias:
            plan += [
                TensorPlan(_name(T.ATTN_Q, "bias", i), hf + "self_attn.q_proj.bias", (q_rows,), q_perm),
                TensorPlan(_name(T.ATTN_K, "bias", i), hf + "self_attn.k_proj.bias", (kv_rows,), k_perm),
                TensorPlan(_name(T.ATTN_V, "bias", i), hf + "self_attn.v_proj.bias", (kv_rows,)),
            ]
        if hp.spec.qk_norm:
            plan += [
                TensorPlan(_name(T.ATTN_Q_NORM, bid=i), hf + "self_attn.q_norm.weight", (hp.head_dim,)),
                TensorPlan(_name(T.ATTN_K_NORM, bid=i), hf + "self_attn.k_norm.weight", (hp.head_dim,)),
            ]
        plan += [
            TensorPlan(_name(T.ATTN_OUT, bid=i), hf + "self_attn.o_proj.weight", (hp.hidden, q_rows)),
            TensorPlan(_name(T.FFN_NORM, bid=i), hf + "post_attention_layernorm.weight", (hp.hidden,)),
            TensorPlan(_name(T.FFN_GATE, bid=i), hf + "mlp.gate_proj.weight", (hp.intermediate, hp.hidden)),
            TensorPlan(_name(T.FFN_UP, bid=i), hf + "mlp.up_proj.weight", (hp.intermediate, hp.hidden)),
            TensorPlan(_name(T.FFN_DOWN, bid=i), hf + "mlp.down_proj.weight", (hp.hidden, hp.intermediate)),
        ]
    plan.append(TensorPlan(_name(T.OUTPUT_NORM), "model.norm.weight", (hp.hidden,)))
    # Tied embeddings: llama.cpp reuses token_embd when `output.weight` is absent.
    if not hp.tied or "lm_head.weight" in available:
        plan.append(TensorPlan(_name(T.OUTPUT), "lm_head.weight", (hp.vocab, hp.hidden)))
    return plan


def write_hparams(writer: gguf.GGUFWriter, hp: HParams) -> None:
    writer.add_context_length(hp.context)
    writer.add_embedding_length(hp.hidden)
    writer.add_block_count(hp.layers)
    writer.add_feed_forward_length(hp.intermediate)
    writer.add_head_count(hp.heads)
    writer.add_head_count_kv(hp.kv_heads)
    writer.add_key_length(hp.head_dim)
    writer.add_value_length(hp.head_dim)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_vocab_size(hp.vocab)
    if hp.rope_scaling and hp.rope_scaling.get("rope_type", hp.rope_scaling.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(hp.rope_scaling["factor"]))


K = gguf.Keys
# Metadata keys the structural gate insists on; the per-architecture ones are templates on {arch}.
REQUIRED_KEYS = (
    K.General.ARCHITECTURE, K.General.FILE_TYPE, K.LLM.CONTEXT_LENGTH, K.LLM.EMBEDDING_LENGTH, K.LLM.BLOCK_COUNT,
    K.LLM.FEED_FORWARD_LENGTH, K.Attention.HEAD_COUNT, K.Attention.HEAD_COUNT_KV, K.Rope.FREQ_BASE,
    K.Attention.LAYERNORM_RMS_EPS, K.Tokenizer.MODEL, K.Tokenizer.LIST, K.Tokenizer.TOKEN_TYPE,
    K.Tokenizer.CHAT_TEMPLATE,
)


def required_keys(arch: str) -> list[str]:
    """Metadata keys the structural gate insists on, for one GGUF architecture."""
    return [key.format(arch=arch) for key in REQUIRED_KEYS]
