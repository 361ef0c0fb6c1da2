"""Whether the box can serve, and if not, why as a class: the one verdict every readiness view shows.

status.json `ready`, `/health/ready`, `/api/status`, the status page and systemd's STATUS= line all
read `assess`, so they cannot disagree. The reason is a fixed class, never free text, because
`/health/ready` is public: a worker's detail can quote a path or an error, never a request or a key,
but the probe has no need for it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance.protocol import WorkerState, WorkerStatus


class NotReady(enum.StrEnum):
    """Why the box is not ready, most severe first (the first that applies is the reason)."""

    SHUTTING_DOWN = "shutting_down"
    WORKER_FAILED = "worker_failed"  # refused to serve (bad sha256, missing device); retried every 30 s
    WORKER_RESTARTING = "worker_restarting"  # stalled or exited; back after its backoff
    THERMAL_PAUSED = "thermal_paused"  # the governor paused or stopped the LLM
    LOADING = "loading"  # a worker is still loading or warming up


# Retry-After of /health/ready: how soon asking again can give another answer.
RETRY_AFTER_S = {NotReady.SHUTTING_DOWN: 30, NotReady.WORKER_FAILED: 30, NotReady.WORKER_RESTARTING: 5,
                 NotReady.THERMAL_PAUSED: 30, NotReady.LOADING: 5}


@dataclass(frozen=True)
class Readiness:
    reason: NotReady | None  # None: ready
    problems: list[str] = field(default_factory=list)  # for the status page and /api/status only

    @property
    def ready(self) -> bool:
        return self.reason is None

    @property
    def retry_after_s(self) -> int | None:
        return None if self.reason is None else RETRY_AFTER_S[self.reason]


def assess(workers: Iterable[WorkerStatus], started: bool, llm_paused: bool, shutting_down: bool) -> Readiness:
    """Ready = every started worker is loaded and warmed up, LLM admission is open, and no shutdown is under way.

    `workers` are exactly the workers the config and the bundle called for (appliance.workers), so a
    model the bundle does not hold never keeps the box from being ready. Before `started` (every worker
    spawned and settled once), a worker not yet spawned is still loading.
    """
    found: dict[NotReady, list[str]] = {}
    if shutting_down:
        found[NotReady.SHUTTING_DOWN] = ["the box is shutting down"]
    if not started:
        found[NotReady.LOADING] = ["the supervisor is still starting its workers"]
    for worker in workers:
        reason = _worker_reason(worker.state, started)
        if reason is not None:
            found.setdefault(reason, []).append(
                f"{worker.name} worker is {worker.state}" + (f" ({worker.detail})" if worker.detail else ""))
    if llm_paused:
        found.setdefault(NotReady.THERMAL_PAUSED, []).append("LLM admission is paused by the thermal governor")
    reasons = [reason for reason in NotReady if reason in found]
    return Readiness(reasons[0] if reasons else None, [p for reason in reasons for p in found[reason]])


def _worker_reason(state: WorkerState, started: bool) -> NotReady | None:
    if state == WorkerState.STOPPED:  # deliberately: by the thermal governor, or not spawned yet
        return NotReady.THERMAL_PAUSED if started else NotReady.LOADING
    return {WorkerState.READY: None, WorkerState.STARTING: NotReady.LOADING, WorkerState.FAILED: NotReady.WORKER_FAILED,
            WorkerState.STALLED: NotReady.WORKER_RESTARTING,
            WorkerState.RESTARTING: NotReady.WORKER_RESTARTING}[state]
