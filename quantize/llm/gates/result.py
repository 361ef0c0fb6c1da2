"""Gate verdicts and their thresholds (defaults from docs/quantization.md#llm-gates, overridable from a TOML file)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class GateResult:
    name: str
    passed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": "pass" if self.passed else "fail", "metrics": self.metrics,
                "thresholds": self.thresholds, "problems": self.problems}


# Published Llama-3-8B figures (mean KLD, same top-1) with head-room for small models: the KLD ceiling is
# 3x the published mean, the top-1 floor 5 points under the published rate (Q5_K_M interpolated).
DEFAULT_KLD_MAX = {"q8_0": 0.0042, "q6_k": 0.0165, "q5_k_m": 0.033, "q4_k_m": 0.093}
DEFAULT_TOP1_MIN = {"q8_0": 0.927, "q6_k": 0.91, "q5_k_m": 0.89, "q4_k_m": 0.869}


@dataclass
class Thresholds:
    """Every number a gate compares against; `orbox quantize llm --thresholds FILE.toml` overrides any."""

    converter_max_rel_error: float = 1e-4
    converter_min_top1: float = 0.995
    kld_max: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KLD_MAX))
    top1_min: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOP1_MIN))
    kld_min_tokens: int = 2048
    # Greedy answers decoded per prompt (generation parity, smoke): real chat answers run 100-300 tokens and a
    # reasoning model's <think> block alone can pass 48, so a run may end at the limit; it must then in both.
    generation_max_new_tokens: int = 256

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_thresholds(path: str | Path | None) -> Thresholds:
    """Defaults, overridden by the keys present in a TOML file; unknown keys are an error."""
    thresholds = Thresholds()
    if path is None:
        return thresholds
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read thresholds TOML ({exc})") from exc
    known = thresholds.as_dict()
    for key, value in document.items():
        if key not in known:
            raise ValueError(f"{path}: unknown threshold {key!r}; expected one of {sorted(known)}")
        default = known[key]
        if isinstance(default, dict):
            if not isinstance(value, dict) or not all(_positive_number(v) for v in value.values()):
                raise ValueError(f"{path}: [{key}] must be a table of positive numbers per type, found {value!r}")
            unknown = sorted(set(k.lower() for k in value) - set(default))
            if unknown:  # a typo must not leave the intended type on its default silently
                raise ValueError(f"{path}: [{key}] has unknown type(s) {unknown}; expected some of {sorted(default)}")
            getattr(thresholds, key).update({k.lower(): float(v) for k, v in value.items()})
        elif type(value) is not type(default) and not (isinstance(default, float) and isinstance(value, int)):
            raise ValueError(f"{path}: {key} must be a {type(default).__name__}, found {value!r}")
        elif not isinstance(default, bool) and not _positive_number(value):
            raise ValueError(f"{path}: {key} must be greater than 0, found {value!r}")
        else:
            setattr(thresholds, key, value)
    return thresholds


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
