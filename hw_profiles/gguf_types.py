"""Size facts about llama.cpp storage types, shared by profile validation and the memory planner.

Bits per weight are whole-file averages published for Llama-3-8B (DESIGN.md section 3): they
already include the mixed-precision tensors a K-quant keeps (Q6_K output, F32 norms).
"""

from __future__ import annotations

# Weight storage, highest quality first. Lower-case names, as llama.cpp's file-type suffixes.
GGUF_BITS_PER_WEIGHT: dict[str, float] = {
    "f16": 16.0,
    "q8_0": 8.50,
    "q6_k": 6.56,
    "q5_k_m": 5.70,
    "q4_k_m": 4.89,
}

# KV cache element size in bytes (block formats: q8_0 = 34 bytes per 32, q4_0 = 18 bytes per 32).
KV_BYTES_PER_ELEMENT: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}

