"""The memory-fit planner: which GGUF type of a Hugging Face model fits a profile's LLM budget.

Estimate (docs/quantization.md#memory-planner), all in bytes:
- weights  = parameters x bits-per-weight / 8, parameters counted from config.json;
- KV cache = 2 (K and V) x layers x context x parallel x kv_heads x head_dim x bytes per element;
- overhead = llama.cpp runtime (library, ggml contexts, vocabulary) + the compute graph for one
  micro-batch (FFN and attention activations, and without flash attention the K.Q score matrix over
  the whole cache) + the logits of each parallel sequence.
The overhead is deliberately on the high side: on the box an underestimate is an OOM kill mid-answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw_profiles.errors import PlanError
from hw_profiles.gguf_types import GGUF_BITS_PER_WEIGHT, KV_BYTES_PER_ELEMENT
from hw_profiles.models import Profile

MIB = 1024 * 1024
RUNTIME_BASE_BYTES = 128 * MIB
MAX_UBATCH = 512  # llama.cpp's default physical micro-batch; `batch` above this is split

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}


class ModelConfigError(PlanError):
    """config.json lacks a field the planner needs, or holds an architecture it does not know."""


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs from config.json."""

    family: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    attention_bias: bool
    mlp_bias: bool
    max_context: int | None

    @property
    def params(self) -> int:
        """Exact parameter count of the decoder (embeddings counted once when tied)."""
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = self.hidden * (q_out + 2 * kv_out) + q_out * self.hidden
        if self.attention_bias:
            attention += q_out + 2 * kv_out
        mlp = 3 * self.hidden * self.intermediate
        if self.mlp_bias:
            mlp += 2 * self.intermediate + self.hidden
        norms = 2 * self.hidden + (2 * self.head_dim if self.family == "qwen3" else 0)
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * (attention + mlp + norms) + embeddings + self.hidden


@dataclass(frozen=True)
class PlanRow:
    """One GGUF type's memory bill; `fits` compares `total_bytes` with the LLM budget."""

    gguf_type: str
    bits_per_weight: float
    weight_bytes: int
    kv_bytes: int
    overhead_bytes: int
    total_bytes: int
    fits: bool


@dataclass(frozen=True)
class LlmPlan:
    """The planner's answer: one row per allowed type, and the chosen one with the reason."""

    profile: str
    family: str
    params: int
    context: int
    parallel: int
    kv_cache_type: str
    budget_bytes: int
    rows: list[PlanRow]
    chosen_type: str | None
    reason: str

    def row(self, gguf_type: str) -> PlanRow:
        """The row of one type (StopIteration if the profile does not allow it)."""
        return next(row for row in self.rows if row.gguf_type == gguf_type)


def load_model_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a Hugging Face config.json, with an error that names the file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ModelConfigError(f"{path}: expected a JSON object, found {type(document).__name__}")
    return document


def _positive_int(config: dict[str, Any], key: str, default: int | None = None) -> int:
    value = config.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelConfigError(f"config.json field {key!r}: expected a positive integer, found {value!r}")
    return value


def model_shape(config: dict[str, Any]) -> ModelShape:
    """Read the shape of a llama, mistral, qwen2 or qwen3 decoder from its config.json contents."""
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(name, str) for name in architectures):
        raise ModelConfigError(f"config.json field 'architectures': expected a list of class names such as "
                               f"[\"LlamaForCausalLM\"], found {architectures!r}")
    family = ARCHITECTURES.get(architectures[0]) if architectures else None
    if family is None and config.get("model_type") in ARCHITECTURES.values():
        family = config["model_type"]
    if family is None:
        raise ModelConfigError(f"config.json field 'architectures': expected one of {sorted(ARCHITECTURES)}, "
                               f"found {architectures!r} (model_type {config.get('model_type')!r})")
    hidden = _positive_int(config, "hidden_size")
    heads = _positive_int(config, "num_attention_heads")
    if config.get("head_dim") is None and hidden % heads:
        raise ModelConfigError(f"config.json: hidden_size {hidden} is not a multiple of num_attention_heads "
                               f"{heads} and no head_dim is given")
    max_context = config.get("max_position_embeddings")
    return ModelShape(
        family=family,
        layers=_positive_int(config, "num_hidden_layers"),
        hidden=hidden,
        intermediate=_positive_int(config, "intermediate_size"),
        heads=heads,
        kv_heads=_positive_int(config, "num_key_value_heads", default=heads),
        head_dim=_positive_int(config, "head_dim", default=hidden // heads),
        vocab=_positive_int(config, "vocab_size"),
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        # Qwen2 always carries q/k/v biases and its config has no flag for them.
        attention_bias=bool(config.get("attention_bias", family == "qwen2")),
        mlp_bias=bool(config.get("mlp_bias", False)),
        max_context=max_context if isinstance(max_context, int) and max_context > 0 else None,
    )


def count_parameters(config: dict[str, Any]) -> int:
    """Parameters of the model a config.json describes, counted from its shape (no weights needed)."""
    return model_shape(config).params


def kv_cache_bytes(shape: ModelShape, context: int, parallel: int, kv_cache_type: str) -> int:
    """K and V for every layer, token and sequence: llama.cpp allocates all of it at load time."""
    elements = 2 * shape.layers * context * parallel * shape.kv_heads * shape.head_dim
    return int(elements * KV_BYTES_PER_ELEMENT[kv_cache_type])


def overhead_bytes(shape: ModelShape, context: int, parallel: int, batch: int, flash_attn: bool) -> int:
    """Runtime base + compute graph of one micro-batch + logits (see the module docstring)."""
    ubatch = min(batch, MAX_UBATCH)
    compute = 4 * ubatch * (2 * shape.intermediate + 4 * shape.hidden)
    if not flash_attn:
        compute += 4 * ubatch * shape.heads * context * parallel
    logits = 4 * shape.vocab * parallel
    return RUNTIME_BASE_BYTES + compute + logits


def plan_llm(model_config: dict[str, Any], profile: Profile, context: int | None = None) -> LlmPlan:
    """Pick the profile's most preferred GGUF type whose weights + KV + overhead fit its LLM budget.

    Raises PlanError (with `.plan` set) when not even `floor_type` fits, saying how far over budget it is.
    """
    shape = model_shape(model_config)
    llm = profile.llm
    context = llm.context_length if context is None else context
    if context < 1:
        raise PlanError(f"context must be a positive number of tokens, found {context}")
    if shape.max_context is not None and context > shape.max_context:
        raise PlanError(f"context {context} is longer than the model's max_position_embeddings "
                        f"{shape.max_context}")
    budget = profile.memory.llm_budget_mb * MIB
    kv = kv_cache_bytes(shape, context, llm.parallel, llm.kv_cache_type)
    overhead = overhead_bytes(shape, context, llm.parallel, llm.batch, llm.flash_attn)
    rows = []
    for gguf_type in llm.gguf_types:
        bits = GGUF_BITS_PER_WEIGHT[gguf_type]
        weights = int(shape.params * bits / 8)
        total = weights + kv + overhead
        rows.append(PlanRow(gguf_type, bits, weights, kv, overhead, total, total <= budget))
    chosen = next((row for row in rows if row.fits), None)
    plan = LlmPlan(profile.name, shape.family, shape.params, context, llm.parallel, llm.kv_cache_type, budget,
                   rows, chosen.gguf_type if chosen else None, _reason(rows, chosen, budget))
    if chosen is None:
        floor = next(row for row in rows if row.gguf_type == llm.floor_type)
        over = floor.total_bytes - budget
        raise PlanError(
            f"{shape.family} model with {shape.params / 1e9:.2f} B parameters does not fit profile "
            f"{profile.name!r}: even the floor type {llm.floor_type} needs {mib(floor.total_bytes)} "
            f"(weights {mib(floor.weight_bytes)} + KV {mib(kv)} + overhead {mib(overhead)}), "
            f"{mib(over)} ({100 * over / budget:.1f} %) over the LLM budget of {mib(budget)}. "
            f"Use a smaller model or a shorter --context than {context}"
            + (f", or fewer parallel sequences than {llm.parallel}." if llm.parallel > 1 else "."), plan)
    return plan


def _reason(rows: list[PlanRow], chosen: PlanRow | None, budget: int) -> str:
    if chosen is None:
        return f"nothing fits the budget of {mib(budget)}"
    skipped = rows[: rows.index(chosen)]
    reason = f"{chosen.gguf_type} fits: {mib(chosen.total_bytes)} of {mib(budget)}"
    if not skipped:
        return reason + "; it is the profile's first choice"
    return reason + "; more preferred types do not fit (" + "; ".join(
        f"{row.gguf_type} needs {mib(row.total_bytes)}" for row in skipped) + ")"


def mib(size: int) -> str:
    """Bytes as whole MiB, the one rounding used in every planner message and table."""
    return f"{size / MIB:,.0f} MiB"
