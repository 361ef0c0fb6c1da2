"""The two exceptions hw_profiles raises, so callers can catch profile and planning problems apart."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a profile file: where (file, dotted key) and why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"


class ProfileError(Exception):
    """A profile is missing, malformed or impossible. `problems` lists every fault, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PlanError(Exception):
    """The memory-fit planner cannot place the model: bad config, or nothing fits above the floor.

    `plan` carries the computed table when the failure is "does not fit", so the CLI can still show it.
    """

    def __init__(self, message: str, plan: object | None = None):
        super().__init__(message)
        self.plan = plan
