"""Float formats of the converter: how numpy holds each one, and converting between them fast and exactly.

A checkpoint's 16-bit tensors (BF16 or F16) have only 65,536 distinct bit patterns, so converting one
to any output type is a table look-up (`np.take` on cache-sized blocks). The table is built with the
same arithmetic the converter used element by element (widen exactly to float32, then round to
nearest even), so the output bytes do not change; only the speed does: numpy's float32 -> float16
cast runs at about 430 MB/s here, the look-up at about 1.9 GB/s (docs/quantization.md#conversion-speed).
Finite checks read the raw bits: no NaN or Inf means the exponent field is never all ones.
"""

from __future__ import annotations

from functools import cache

import numpy as np

# How numpy holds each safetensors / GGUF float type (bfloat16 as its raw 16 bits).
STORAGE = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
# |bits| (sign cleared) at or above this is Inf or NaN: the exponent field is all ones.
_NON_FINITE_FROM = {"F16": 0x7C00, "BF16": 0x7F80}


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw storage of `dtype` -> float32, exactly (BF16 by a 16-bit shift: numpy has no bfloat16)."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def narrow(values: np.ndarray, out: np.dtype) -> np.ndarray:
    """float32 -> the storage dtype `out`, rounding to nearest even (bfloat16 bits for uint16)."""
    if out == np.uint16:
        bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return values.astype(out, copy=False)


@cache
def _table(dtype: str, out: np.dtype) -> np.ndarray:
    """out-storage value for every 16-bit pattern of `dtype` (65,536 entries, at most 256 KB)."""
    patterns = np.arange(1 << 16, dtype=np.uint16).view(STORAGE[dtype])
    with np.errstate(over="ignore", invalid="ignore"):  # Inf/NaN patterns: never looked up (checked first)
        return narrow(widen(patterns, dtype), out)


def convert_into(raw: np.ndarray, dtype: str, out: np.ndarray) -> None:
    """Write `raw` (storage of `dtype`) into `out` (a storage array of the output type, same size)."""
    if dtype in _NON_FINITE_FROM:
        np.take(_table(dtype, out.dtype), raw.view(np.uint16), out=out)
    else:
        out[...] = narrow(raw, out.dtype)


def convert(raw: np.ndarray, dtype: str, out: np.dtype) -> np.ndarray:
    """`raw` (storage of `dtype`) as a new array of the output storage dtype `out`."""
    result = np.empty(raw.shape, dtype=out)
    convert_into(raw, dtype, result)
    return result


def is_finite(raw: np.ndarray, dtype: str) -> bool:
    """No NaN or Inf among raw values of `dtype`."""
    limit = _NON_FINITE_FROM.get(dtype)
    if limit is None:
        return bool(np.isfinite(raw).all())
    return raw.size == 0 or int((raw.view(np.uint16) & 0x7FFF).max()) < limit
