"""Size facts about llama.cpp storage types, shared by profile validation and the memory planner.

Bits per weight are whole-file averages published for Llama-3-8B (docs/quantization.md#published-quality): they
already include the mixed-precision tensors a K-quant keeps (Q6_K output, F32 norms).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GgufType:
    """One GGUF weight storage type: the single place its name and facts are written down.

    Names are strings, not numbers: the vendor toolchain resolves `file_type` in gguf-py
    (`gguf.LlamaFileType[file_type]`) and in the installed llama.cpp binding (`LLAMA_FTYPE_<file_type>`),
    and `tensor_type` in `gguf.GGMLQuantizationType`, so no enum value is copied here.
    """

    name: str  # lower-case, as llama.cpp's file-type suffixes and profiles spell it
    file_type: str  # llama.cpp's llama_ftype member without the LLAMA_FTYPE_ prefix
    tensor_type: str  # GGML type of the weight matrices (a k-quant's main type; it mixes in others)
    quantized: bool  # written by llama.cpp's quantizer from the F32 reference, not by our converter
    bits_per_weight: float | None  # published whole-file average; None where none is published


# Every type the toolchain can write, highest quality first.
GGUF_TYPES: dict[str, GgufType] = {t.name: t for t in (
    GgufType("f32", "ALL_F32", "F32", quantized=False, bits_per_weight=None),
    GgufType("f16", "MOSTLY_F16", "F16", quantized=False, bits_per_weight=16.0),
    GgufType("bf16", "MOSTLY_BF16", "BF16", quantized=False, bits_per_weight=None),
    GgufType("q8_0", "MOSTLY_Q8_0", "Q8_0", quantized=True, bits_per_weight=8.50),
    GgufType("q6_k", "MOSTLY_Q6_K", "Q6_K", quantized=True, bits_per_weight=6.56),
    GgufType("q5_k_m", "MOSTLY_Q5_K_M", "Q5_K", quantized=True, bits_per_weight=5.70),
    GgufType("q4_k_m", "MOSTLY_Q4_K_M", "Q4_K", quantized=True, bits_per_weight=4.89),
)}
# The converter writes the float types; llama.cpp quantizes the F32 reference into the others.
FLOAT_TYPES = tuple(name for name, t in GGUF_TYPES.items() if not t.quantized)
QUANTIZED_TYPES = tuple(name for name, t in GGUF_TYPES.items() if t.quantized)

# The types a profile may list: the planner sizes a type only from its published bits per weight.
GGUF_BITS_PER_WEIGHT: dict[str, float] = {
    t.name: t.bits_per_weight for t in GGUF_TYPES.values() if t.bits_per_weight is not None
}

# KV cache element size in bytes (block formats: q8_0 = 34 bytes per 32, q4_0 = 18 bytes per 32).
KV_BYTES_PER_ELEMENT: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}
