"""Gate 3: llama.cpp logits from our F32 GGUF match transformers' logits on the same ids.

A wrong Q/K permutation, rope scaling or bias mapping does not crash anything; it only shifts logits.
This comparison against the reference implementation is the only thing that catches it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantize.llm.gates.result import GateResult, Thresholds
from quantize.llm.gates.runtime import all_logits, open_llama


def transformers_logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def converter_parity_gate(f32_gguf: Path, model_dir: Path, ids: list[int], thresholds: Thresholds,
                          threads: int) -> GateResult:
    reference = transformers_logits(model_dir, ids)
    llm = open_llama(f32_gguf, n_ctx=max(64, len(ids)), threads=threads)
    found = all_logits(llm, ids)
    scale = np.abs(reference).max(axis=-1)
    rel_error = float((np.abs(found - reference).max(axis=-1) / np.maximum(scale, 1e-6)).max())
    top1 = float((found.argmax(-1) == reference.argmax(-1)).mean())
    problems = []
    if not rel_error <= thresholds.converter_max_rel_error:
        problems.append(f"max relative logit error {rel_error:.3g} exceeds {thresholds.converter_max_rel_error:g}")
    if top1 < thresholds.converter_min_top1:
        problems.append(f"top-1 agreement {top1:.4f} is below {thresholds.converter_min_top1}")
    return GateResult(
        "converter_parity", not problems,
        {"tokens": len(ids), "max_rel_error": float(f"{rel_error:.3g}"), "top1_agreement": round(top1, 4)},
        {"max_rel_error": thresholds.converter_max_rel_error, "min_top1": thresholds.converter_min_top1},
        problems,
    )
