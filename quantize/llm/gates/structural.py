"""Gate 1: the GGUF file has every required key, exactly the expected tensors, and no NaN/Inf."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantize.llm.gates.result import GateResult


def structural_gate(path: Path, required_keys: list[str], expected_tensors: list[str],
                    expected_metadata: dict[str, str], advance: Callable[[int], Any] | None = None) -> GateResult:
    """`advance(1)` is called after each tensor's values are checked (they are dequantized one at a time)."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    problems = [f"{path.name}: metadata key {key!r} is missing" for key in required_keys if key not in reader.fields]
    for key, value in expected_metadata.items():
        field = reader.fields.get(key)
        found = field.contents() if field is not None else None
        if found != value:
            problems.append(f"{path.name}: metadata {key!r} is {found!r}, expected {value!r}")
    names = [tensor.name for tensor in reader.tensors]
    missing, extra = sorted(set(expected_tensors) - set(names)), sorted(set(names) - set(expected_tensors))
    if missing:
        problems.append(f"{path.name}: tensors missing: {missing}")
    if extra:
        problems.append(f"{path.name}: unexpected tensors: {extra}")
    non_finite = []
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type)
        if not np.isfinite(values).all():
            non_finite.append(tensor.name)
        if advance is not None:
            advance(1)
    if non_finite:
        problems.append(f"{path.name}: NaN or Inf in tensors {non_finite}")
    metrics = {"keys": len(reader.fields), "tensors": len(names), "non_finite_tensors": len(non_finite)}
    return GateResult("structural", not problems, metrics, {"required_keys": len(required_keys),
                                                             "expected_tensors": len(expected_tensors)}, problems)
