"""Gate 4: each quantized type against the F32 GGUF: mean KLD and same-top-1 over >= 2k scored tokens.

The reference log-probabilities are computed once and kept in a memory-mapped file in the build
directory (a real vocabulary makes them large), then every quantized file is scored against them.
The first quarter of each window is context only and not scored, as llama-perplexity does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hw_profiles.gguf_types import QUANTIZED_TYPES
from quantize.llm.gates.result import GateResult, Thresholds
from quantize.llm.gates.runtime import all_logits, log_softmax, open_llama


def windows(stream: list[int], window: int, min_scored: int) -> list[list[int]]:
    """Cut the token stream into windows; cycle it when it is too short to give `min_scored` tokens."""
    scored_per_window = window - window // 4
    count = -(-min_scored // scored_per_window)
    needed = count * window
    cycled = (stream * (needed // max(1, len(stream)) + 1))[:needed]
    return [cycled[i * window:(i + 1) * window] for i in range(count)]


def reference_logprobs(f32_gguf: Path, chunks: list[list[int]], scratch: Path, threads: int,
                       advance: Callable[[int], Any] | None = None) -> np.ndarray:
    """Log-probabilities of the F32 reference for the scored positions of every window (memory-mapped)."""
    window = len(chunks[0])
    skip = window // 4
    llm = open_llama(f32_gguf, n_ctx=window, threads=threads)
    store = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.float32,
                                      shape=(len(chunks), window - skip, llm.n_vocab()))
    for i, chunk in enumerate(chunks):
        store[i] = log_softmax(all_logits(llm, chunk)[skip:])
        if advance is not None:
            advance(1)
    store.flush()
    return store


def score_type(quant_gguf: Path, chunks: list[list[int]], reference: np.ndarray, threads: int,
               advance: Callable[[int], Any] | None = None) -> tuple[float, float]:
    """(mean KLD, same-top-1 rate) of one quantized file against the reference log-probabilities."""
    window = len(chunks[0])
    skip = window // 4
    llm = open_llama(quant_gguf, n_ctx=window, threads=threads)
    kld_sum, same, count = 0.0, 0, 0
    for i, chunk in enumerate(chunks):
        ref = reference[i].astype(np.float64)
        quant = log_softmax(all_logits(llm, chunk)[skip:])
        kld_sum += float((np.exp(ref) * (ref - quant)).sum())
        same += int((ref.argmax(-1) == quant.argmax(-1)).sum())
        count += len(ref)
        if advance is not None:
            advance(1)
    return kld_sum / count, same / count


def quantization_gate(measured: dict[str, tuple[float, float]], scored_tokens: int,
                      thresholds: Thresholds) -> GateResult:
    """Judge per-type KLD / top-1 against thresholds and the Q8_0 < Q6_K < Q5_K_M < Q4_K_M ordering."""
    problems, metrics, limits = [], {}, {}
    for qtype, (kld, top1) in measured.items():
        metrics[qtype] = {"mean_kld": float(f"{kld:.4g}"), "same_top1": round(top1, 4)}
        limits[qtype] = {"max_mean_kld": thresholds.kld_max[qtype], "min_same_top1": thresholds.top1_min[qtype]}
        if not kld <= thresholds.kld_max[qtype]:
            problems.append(f"{qtype}: mean KLD {kld:.4g} exceeds {thresholds.kld_max[qtype]}")
        if top1 < thresholds.top1_min[qtype]:
            problems.append(f"{qtype}: same top-1 {top1:.4f} is below {thresholds.top1_min[qtype]}")
    ranked = [t for t in QUANTIZED_TYPES if t in measured]  # highest quality first
    for better, worse in zip(ranked, ranked[1:], strict=False):
        if not measured[better][0] < measured[worse][0]:
            problems.append(f"ordering violated: KLD({better}) {measured[better][0]:.4g} is not below "
                            f"KLD({worse}) {measured[worse][0]:.4g}")
    if scored_tokens < thresholds.kld_min_tokens:
        problems.append(f"only {scored_tokens} tokens scored, at least {thresholds.kld_min_tokens} required")
    metrics["scored_tokens"] = scored_tokens
    limits["min_scored_tokens"] = thresholds.kld_min_tokens
    limits["ordering"] = " < ".join(ranked)
    return GateResult("quantization", not problems, metrics, limits, problems)
