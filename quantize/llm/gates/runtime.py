"""Opening GGUF files with the real llama.cpp (llama-cpp-python) for the gates, quietly and deterministically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def open_llama(path: Path, *, n_ctx: int = 512, threads: int = 2, vocab_only: bool = False) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=threads,
        n_threads_batch=threads, logits_all=True, vocab_only=vocab_only, verbose=False, seed=0,
        type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,  # keep the KV cache out of the error budget
    )


def all_logits(llm: Any, ids: list[int]) -> np.ndarray:
    """Logits for every position of `ids`, evaluated from an empty context."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def is_end_of_generation(llm: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
