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

from quantize.llm.export import OUT_TYPES, OutputError

# Our lower-case type names → the binding's exported constant (never hard-coded numbers).
QUANT_FTYPES = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
}
SUPPORTED_TYPES = (*OUT_TYPES, *QUANT_FTYPES)
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
    params.ftype = getattr(llama_cpp, QUANT_FTYPES[quant_type])
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
    if quant_type in QUANT_FTYPES and quant_type != "q8_0":
        for tensor in reader.tensors:
            if len(tensor.shape) == 2 and tensor.tensor_type.name not in _K_FAMILY:
                fallbacks.append({"tensor": tensor.name, "type": tensor.tensor_type.name,
                                  "row_length": int(tensor.shape[0])})
    return {"types": dict(sorted(counts.items())), "fallbacks": fallbacks}
