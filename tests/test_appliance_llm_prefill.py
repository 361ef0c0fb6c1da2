"""Prompt reuse in the KV cache never changes an answer: cold, warm and after an unrelated request, the
last prompt token's logits and the sampled tokens are byte-identical (llm_generation.PrefillCache).

A small n_batch makes every prompt span several prefill chunks, so a reused prefix that ended mid-chunk
(the old behaviour) would evaluate other batches than a cold run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.llm_generation import Generation, PrefillCache

BATCH = 16
SYSTEM = "You answer from numbered sources only. " * 6


def _llm(bundle: Path):
    from llama_cpp import Llama

    return Llama(model_path=str(bundle / "llm" / "tiny-q8_0.gguf"), n_ctx=1024, n_batch=BATCH, n_threads=1,
                 n_threads_batch=1, seed=1234, verbose=False)


def _answer(llm, cache: PrefillCache, question: str) -> tuple[bytes, list[int], int]:
    """(last prompt token's logits, sampled tokens, tokens reused from the cache)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    generation = Generation(llm, "chat", {"messages": messages, "max_tokens": 6, "temperature": 0.0}, 1234, cache)
    reused = generation._prefilled
    logits = b""
    finish = None
    while finish is None:
        _, finish = generation.step()
        if not logits and not generation.prefilling:
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).tobytes()
    generation.close()
    return logits, list(generation.completion), reused


@pytest.fixture(scope="module")
def cold(tiny_bundle: Path) -> tuple[bytes, list[int], int]:
    return _answer(_llm(tiny_bundle), PrefillCache(), "Which dose of Zorivastin applies in renal failure?")


def test_warm_and_after_an_unrelated_request_equal_cold(tiny_bundle: Path, cold) -> None:
    llm, cache = _llm(tiny_bundle), PrefillCache()
    question = "Which dose of Zorivastin applies in renal failure?"
    assert cold[2] == 0
    first = _answer(llm, cache, question)
    warm = _answer(llm, cache, question)
    _answer(llm, cache, "Where is the Amber Surgical Unit?")  # same system prompt, another question
    after_unrelated = _answer(llm, cache, question)
    assert warm[2] > 0 and warm[2] % BATCH == 0, "the warm run reused nothing, so it proves nothing"
    assert after_unrelated[2] > 0 and after_unrelated[2] % BATCH == 0
    for run in (first, warm, after_unrelated):
        assert run[0] == cold[0] and run[1] == cold[1]


def test_a_change_of_n_batch_empties_the_cache(tiny_bundle: Path) -> None:
    llm, cache = _llm(tiny_bundle), PrefillCache()
    _answer(llm, cache, "Which dose of Zorivastin applies in renal failure?")
    llm.n_batch = BATCH // 2
    assert _answer(llm, cache, "Which dose of Zorivastin applies in renal failure?")[2] == 0
