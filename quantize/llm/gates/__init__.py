"""Quality gates for an LLM build: every metric, threshold and verdict ends up in the manifest.

A gate never raises for a bad *result*; it returns a failing GateResult so the report can list every
problem at once. It raises only when it cannot run at all.
"""

from quantize.llm.gates.result import GateResult, Thresholds, load_thresholds

__all__ = ["GateResult", "Thresholds", "load_thresholds"]
