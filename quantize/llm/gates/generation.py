"""Greedy decoding of chat prompts in llama.cpp and in transformers, and where two decodings part.

Both decoders keep the end-of-generation token that ended a run, so comparing two token lists compares
the text *and* where generation stopped: a GGUF whose end-of-generation id is wrong runs on past the
token where transformers stops, and the lists part there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantize.llm.gates.runtime import is_end_of_generation, open_llama


@dataclass(frozen=True)
class Generation:
    """New token ids of one greedy run; the last one is the end-of-generation token when `stopped`."""

    tokens: list[int]
    stopped: bool
    logits: np.ndarray | None = None  # (len(tokens), vocab) per step, kept by the reference decoder only


def llama_greedy(llm: Any, prompt: list[int], max_new: int) -> Generation:
    """Argmax decoding in llama.cpp until an end-of-generation token or `max_new` tokens."""
    llm.reset()
    llm.eval(prompt)
    produced: list[int] = []
    for _ in range(max_new):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        produced.append(token)
        if is_end_of_generation(llm, token):
            return Generation(produced, True)
        llm.eval([token])
    return Generation(produced, False)


def llama_generations(gguf_path: Path, prompts: list[list[int]], max_new: int, threads: int) -> list[Generation]:
    llm = open_llama(gguf_path, n_ctx=max(len(p) for p in prompts) + max_new + 8, threads=threads)
    return [llama_greedy(llm, prompt, max_new) for prompt in prompts]


def transformers_generations(model_dir: Path, prompts: list[list[int]], end_ids: list[int],
                             max_new: int) -> list[Generation]:
    """Greedy decoding in transformers (F32), stopping at `end_ids`, with each step's logits."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # decoding one token at a time: more threads only spin (quantize/tiny_models.py)
    config = GenerationConfig(max_new_tokens=max_new, do_sample=False, eos_token_id=end_ids or None,
                              pad_token_id=end_ids[0] if end_ids else None, output_logits=True,
                              return_dict_in_generate=True)
    results = []
    try:
        with torch.no_grad():
            for prompt in prompts:
                ids = torch.tensor([prompt])
                out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
                tokens = out.sequences[0, len(prompt):].tolist()
                logits = torch.cat(out.logits).float().numpy()
                results.append(Generation(tokens, bool(tokens) and tokens[-1] in end_ids, logits))
    finally:
        torch.set_num_threads(previous)
    return results


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first new token where two decodings differ (one ending early counts); None if equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
