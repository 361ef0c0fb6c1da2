"""Gate 5: greedy decoding of a chat prompt is deterministic (two runs, same ids) and stops at EOS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quantize.llm.gates.result import GateResult, Thresholds
from quantize.llm.gates.runtime import is_end_of_generation, open_llama

SMOKE_MESSAGES = [{"role": "user", "content": "When should the urinary catheter be removed?"}]


def greedy(llm: Any, prompt: list[int], max_new: int) -> tuple[list[int], bool]:
    """Argmax decoding; returns the new ids and whether an end-of-generation token ended it."""
    llm.reset()
    llm.eval(prompt)
    produced: list[int] = []
    for _ in range(max_new):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if is_end_of_generation(llm, token):
            return produced, True
        produced.append(token)
        llm.eval([token])
    return produced, False


def smoke_gate(gguf_path: Path, prompt: list[int], thresholds: Thresholds, threads: int) -> GateResult:
    max_new = thresholds.smoke_max_new_tokens
    llm = open_llama(gguf_path, n_ctx=len(prompt) + max_new + 8, threads=threads)
    first, stopped = greedy(llm, prompt, max_new)
    second, stopped_again = greedy(llm, prompt, max_new)
    problems = []
    if first != second or stopped != stopped_again:
        problems.append("greedy decoding is not deterministic: two runs of the same prompt differ")
    if thresholds.smoke_require_eos and not stopped:
        problems.append(f"no end-of-generation token within {max_new} new tokens")
    return GateResult("smoke", not problems,
                      {"new_tokens": len(first), "stopped_at_eos": stopped, "deterministic": first == second},
                      {"max_new_tokens": max_new, "require_eos": thresholds.smoke_require_eos}, problems)
