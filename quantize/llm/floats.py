"""Float formats of the converter: how numpy holds each one, and converting between them fast and exactly.

A checkpoint's 16-bit tensors (BF16 or F16) have only 65,536 distinct bit patterns, so converting one
to any output type is a table look-up (`np.take` on cache-sized blocks). The table is built with the
same arithmetic the converter used element by element (widen exactly to float32, then round to
nearest even), so the output bytes do not change; only the speed does: numpy's float32 -> float16
cast runs at about 430 MB/s here, the look-up at about 1.9 GB/s (docs/quantization.md#conversion-speed).
Finite checks read the raw bits: no NaN or Inf means the exponent field is never all ones.

BF16 -> F16, the common case (bf16 checkpoints, f16 GGUF), skips even the look-up: where the bf16 exponent
lies in f16's normal range the 8-bit significand fits f16's 11 bits, so the f16 pattern is the bf16 one with
the exponent re-biased and the significand shifted left by 3, exactly. Seven vectorised uint16 passes do that
and flag the rest (zeros, f16 subnormals, overflow, Inf/NaN: 0.2 % of a normal(0, 0.02) tensor), which
the table converts; the flags double as the finite check.
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


def convert_into(raw: np.ndarray, dtype: str, out: np.ndarray) -> bool:
    """Write `raw` (storage of `dtype`) into `out` (a storage array of the output type, same size).

    Returns False when `raw` holds NaN or Inf (what `out` then holds is unspecified)."""
    if dtype == "BF16" and out.dtype == np.float16:
        return _bf16_to_f16(raw, out.view(np.uint16))
    if not is_finite(raw, dtype):
        return False
    if dtype in _NON_FINITE_FROM:
        np.take(_table(dtype, out.dtype), raw.view(np.uint16), out=out)
    else:
        out[...] = narrow(raw, out.dtype)
    return True


# bf16 |bits| of f16's normal range: exponent 113..142 (f16's 1..30 re-biased by 127 - 15 = 112).
_F16_NORMAL_FROM, _F16_NORMAL_SPAN = 113 << 7, (143 - 113) << 7


def _bf16_to_f16(raw: np.ndarray, out: np.ndarray) -> bool:
    """Exact bf16 -> f16 bits by re-biasing (module docstring); False on NaN/Inf. `out` is a uint16 view."""
    rest = np.bitwise_and(raw, 0x7FFF)
    np.subtract(rest, _F16_NORMAL_FROM, out=rest)  # wraps below the range, so one compare tests both ends
    rest = rest >= _F16_NORMAL_SPAN
    # (bits << 3) - (112 << 10) mod 2^16 is the re-biased exponent and widened significand; then the sign.
    np.left_shift(raw, 3, out=out)
    np.subtract(out, (112 << 10) & 0xFFFF, out=out)
    np.bitwise_or(out, np.bitwise_and(raw, 0x8000), out=out)
    where = np.flatnonzero(rest)
    if not is_finite(raw[where], "BF16"):
        return False
    out[where] = _table("BF16", np.dtype(np.float16)).view(np.uint16)[raw[where]]
    return True


def is_finite(raw: np.ndarray, dtype: str) -> bool:
    """No NaN or Inf among raw values of `dtype`."""
    limit = _NON_FINITE_FROM.get(dtype)
    if limit is None:
        return bool(np.isfinite(raw).all())
    return raw.size == 0 or int((raw.view(np.uint16) & 0x7FFF).max()) < limit
