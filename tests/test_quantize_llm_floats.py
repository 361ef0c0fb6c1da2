"""The converter's float kernels give the bytes of the element-wise reference (widen exactly, round to nearest
even) for every 16-bit pattern, and report NaN/Inf instead of converting them."""

from __future__ import annotations

import numpy as np
import pytest

from quantize.llm.floats import STORAGE, convert_into, narrow, widen

PATTERNS = np.arange(1 << 16, dtype=np.uint16)


@pytest.mark.parametrize("source", ["BF16", "F16"])
@pytest.mark.parametrize("target", ["F32", "F16", "BF16"])
def test_every_finite_pattern_converts_like_the_reference(source, target):
    magnitude = PATTERNS & 0x7FFF
    finite = PATTERNS[magnitude < (0x7F80 if source == "BF16" else 0x7C00)].view(STORAGE[source])
    out = np.empty(finite.size, STORAGE[target])
    assert convert_into(finite, source, out)
    with np.errstate(over="ignore"):
        expected = narrow(widen(finite, source), STORAGE[target])
    assert out.view(np.uint8).tobytes() == expected.view(np.uint8).tobytes()


@pytest.mark.parametrize("source", ["BF16", "F16"])
@pytest.mark.parametrize("bad", ["inf", "-inf", "nan"])
def test_nan_and_inf_are_reported(source, bad):
    values = np.full(1000, 0.5, np.float32)
    values[777] = float(bad)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16) if source == "BF16" else values.astype(np.float16)
    assert not convert_into(raw, source, np.empty(raw.size, np.float16))
