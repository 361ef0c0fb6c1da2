"""Gate: each published file decodes the chat prompts deterministically; where it departs from F32, as information.

Whether an answer ends is judged once, on the F32 GGUF against transformers (generation_parity); how much a
quantized type changes the answers is judged by KLD and top-1 (quantization). Here each file's greedy
answers are decoded, a second run of the first prompt must give the same ids, and the first new token
where each answer departs from the F32 GGUF's is recorded (None: identical up to the limit).
"""

from __future__ import annotations

from pathlib import Path

from quantize.llm.gates.generation import Generation, first_difference, llama_generations
from quantize.llm.gates.result import GateResult, Thresholds


def smoke_gate(gguf_path: Path, prompts: list[list[int]], f32: list[Generation], thresholds: Thresholds,
               threads: int) -> GateResult:
    max_new = thresholds.generation_max_new_tokens
    runs = llama_generations(gguf_path, prompts, max_new, threads)
    again = llama_generations(gguf_path, prompts[:1], max_new, threads)[0]
    deterministic = again.tokens == runs[0].tokens
    problems = [] if deterministic else ["greedy decoding is not deterministic: two runs of the same prompt differ"]
    metrics = {"new_tokens": [len(run.tokens) for run in runs], "stopped": [run.stopped for run in runs],
               "departs_from_f32_at": [first_difference(ref.tokens, run.tokens) for ref, run in zip(f32, runs,
                                                                                                    strict=True)],
               "deterministic": deterministic}
    return GateResult("smoke", deterministic, metrics, {"max_new_tokens": max_new, "deterministic": True}, problems)
