"""K-quants through libllama (`llama_model_quantize`), and what they actually produced per tensor.

gguf-py cannot write k-quants; llama.cpp can, and it silently falls back to a legacy type for any row
that is not a multiple of 256. The per-tensor type histogram records exactly what was written, and any
such fallback is listed in the manifest by tensor name.
"""

from __future__ import annotations

import ctypes
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from hw_profiles.gguf_types import GGUF_TYPES
from quantize.llm.export import OutputError

SUPPORTED_TYPES = tuple(GGUF_TYPES)
# GGML k-quant block types: a matrix of a k-quant file in any other type is llama.cpp's fallback.
_K_FAMILY = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"}


def parse_types(text: str) -> list[str]:
    """'q8_0,Q4_K_M' → ['q8_0', 'q4_k_m'], refusing unknown or repeated names."""
    types = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [t for t in types if t not in SUPPORTED_TYPES]
    if unknown or not types or len(set(types)) != len(types):
        raise ValueError(f"--types {text!r}: expected distinct names from {', '.join(SUPPORTED_TYPES)}")
    return types


def quantize_gguf(source: Path, target: Path, quant_type: str, threads: int) -> None:
    """Quantize a float GGUF into `target` with llama.cpp; all metadata (incl. our keys) is carried over."""
    import llama_cpp

    # llama-cpp-python routes libllama's log through this logger; at its default level every tensor of
    # the quantization is printed. Errors still come through.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{GGUF_TYPES[quant_type].file_type}")  # by name, never a number
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        raise OutputError(f"{target}: llama.cpp quantization to {quant_type} failed (status {status}); "
                          "is the disk full or the input unreadable?")


def type_histogram(path: Path, quant_type: str) -> dict[str, Any]:
    """Per-tensor type counts, plus the matrices a k-quant could not use (llama.cpp's silent fallback)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    fallbacks = []
    if GGUF_TYPES[quant_type].tensor_type in _K_FAMILY:
        for tensor in reader.tensors:
            if len(tensor.shape) == 2 and tensor.tensor_type.name not in _K_FAMILY:
                fallbacks.append({"tensor": tensor.name, "type": tensor.tensor_type.name,
                                  "row_length": int(tensor.shape[0])})
    return {"types": dict(sorted(counts.items())), "fallbacks": fallbacks}
