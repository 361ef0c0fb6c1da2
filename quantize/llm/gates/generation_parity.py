"""Gate: greedy chat answers from the F32 GGUF in llama.cpp are transformers' answers, and stop where they stop.

This is what an end-of-generation or chat-template bug looks like from outside: llama.cpp runs on where the
source model stops (or stops early), or answers differently from the first token. Each prompt is decoded
up to `generation_max_new_tokens` in both; the token lists, end-of-generation token included, must be equal,
or both must run to the limit. Two implementations may pick different tokens where transformers' two
candidates lie within the converter gate's logit tolerance of each other (a tie); the rest of that answer
is then not compared, and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable

from quantize.llm.gates.generation import Generation, first_difference
from quantize.llm.gates.result import GateResult, Thresholds


def _near_tie(reference: Generation, found: Generation, at: int, max_rel_error: float) -> bool:
    """Whether transformers' logits for the two diverging tokens lie within twice the converter tolerance."""
    if reference.logits is None or at >= min(len(reference.tokens), len(found.tokens)):
        return False  # one side stopped where the other went on with the same token: no tie explains that
    logits = reference.logits[at]
    margin = float(logits[reference.tokens[at]] - logits[found.tokens[at]])
    return margin <= 2 * max_rel_error * float(abs(logits).max())


def _departure(reference: Generation, found: Generation, at: int, describe: Callable[[int], str]) -> str:
    """Both runs share one limit, so the shorter list is the one that ended (on its last token)."""
    for ended, name, other, went_on in ((reference, "transformers", "llama.cpp", found),
                                        (found, "llama.cpp", "transformers", reference)):
        if at == len(ended.tokens):
            return (f"{name} ends at new token {at - 1} ({describe(ended.tokens[-1])}) but {other} goes on with "
                    f"{describe(went_on.tokens[at])}")
    ours, theirs = describe(found.tokens[at]), describe(reference.tokens[at])
    return f"at new token {at} transformers gives {theirs}, llama.cpp {ours}"


def generation_parity_gate(reference: list[Generation], found: list[Generation], labels: list[str],
                           thresholds: Thresholds, describe: Callable[[int], str],
                           markers: dict[str, int]) -> GateResult:
    """`reference`: transformers' runs; `found`: llama.cpp's on the F32 GGUF; `markers`: thinking-marker ids."""
    problems, cases = [], []
    for label, ref, run in zip(labels, reference, found, strict=True):
        at = first_difference(ref.tokens, run.tokens)
        tie = at is not None and _near_tie(ref, run, at, thresholds.converter_max_rel_error)
        compared = ref.tokens if at is None else ref.tokens[:at]
        cases.append({"prompt": label, "new_tokens": len(ref.tokens), "stopped": ref.stopped, "departs_at": at,
                      "near_tie": tie, "thinking_markers": sum(compared.count(i) for i in markers.values())})
        if at is not None and not tie:
            problems.append(f"prompt {label!r}: {_departure(ref, run, at, describe)}")
    metrics = {"cases": cases, "thinking_markers_compared": sum(c["thinking_markers"] for c in cases)}
    limits = {"max_new_tokens": thresholds.generation_max_new_tokens,
              "tie_margin": f"2 x {thresholds.converter_max_rel_error:g} x max |logit|"}
    return GateResult("generation_parity", not problems, metrics, limits, problems)
