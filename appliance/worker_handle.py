"""The supervisor's side of one worker: process, pipe, state machine, backoff, stall detection.

States (protocol.WorkerState): `starting` (spawned, not ready yet), `ready`, `stalled` (being killed:
SIGTERM, then SIGKILL after the grace), `restarting` (waiting out the backoff), `stopped`
(deliberately: shutdown or the thermal governor), `failed` (the worker refused to serve, e.g. a bad
sha256 or a missing capture device; retried every `backoff_max_s` in case the bundle or device gets fixed).

A crash or stall schedules a restart after min(backoff_initial * 2^(n-1), backoff_max), where n
counts consecutive failures and resets after `stable_after_s` of readiness. A stall is either no
heartbeat for `liveness_timeout_s` (the process is frozen or gone), or heartbeats whose progress
counter has not moved for the worker's `stall_timeout_s` while it has pending work (the process
answers but its work loop is stuck).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from appliance.config import SupervisorConfig
from appliance.protocol import (
    Configured,
    Embedded,
    GenerationEvent,
    Heartbeat,
    Op,
    Ready,
    Reranked,
    Stop,
    WorkerFailed,
    WorkerName,
    WorkerState,
    WorkerStatus,
)
from appliance.worker_process import FAILED_EXIT, WorkerSpec, worker_main

# What a worker says besides its lifecycle events, handed to the supervisor's callback.
WorkerReply = Configured | GenerationEvent | Embedded | Reranked
_RUNNING = (WorkerState.STARTING, WorkerState.READY, WorkerState.STALLED)  # a live process to watch

log = logging.getLogger("orbox.supervisor")
_CONTEXT = multiprocessing.get_context("spawn")  # never fork a process that runs threads


class WorkerHandle:
    def __init__(self, name: WorkerName, make_spec: Callable[[], WorkerSpec], timings: SupervisorConfig,
                 audit: Callable[..., None], on_message: Callable[[WorkerReply], None],
                 on_ready: Callable[[], None], on_lost: Callable[[str], None]):
        self.name = name
        self._make_spec = make_spec
        self._t = timings
        self._audit = audit
        self._on_message = on_message
        self._on_ready = on_ready
        self._on_lost = on_lost
        self.lock = threading.RLock()
        self.state = WorkerState.STOPPED
        self.detail: str | None = None
        self.process: multiprocessing.Process | None = None
        self.conn: Connection | None = None
        self._send_lock = threading.Lock()
        self.restarts = 0
        self.starts = 0
        self.consecutive_failures = 0
        self.info: dict[str, Any] = {}
        self.heartbeat: Heartbeat | None = None
        self.cores: list[int] = []
        self._started_at = self._ready_at = self._last_heartbeat = self._progress_at = 0.0
        self._next_start_at = 0.0
        self._kill_deadline: float | None = None
        self._killed = False
        self._failed_reason: str | None = None
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def spawn(self) -> None:
        with self.lock:
            spec = self._make_spec()
            parent, child = _CONTEXT.Pipe(duplex=True)
            process = _CONTEXT.Process(target=worker_main, args=(child, spec), name=f"orbox-{self.name}", daemon=True)
            process.start()
            child.close()
            self.process, self.conn, self.cores = process, parent, spec.cores
            if self.starts:
                self.restarts += 1
            self.starts += 1
            now = time.monotonic()
            self.state, self.detail = WorkerState.STARTING, None
            self._started_at = self._last_heartbeat = self._progress_at = now
            self._kill_deadline, self._killed, self._failed_reason = None, False, None
            self.heartbeat, self.info = None, {}
            self._reader = threading.Thread(target=self._read, args=(parent, process), name=f"reader-{self.name}",
                                            daemon=True)
            self._reader.start()
        self._audit("worker.start", worker=self.name, pid=process.pid, cores=spec.cores, restarts=self.restarts)

    def send(self, message: Op) -> bool:
        """Best effort: False when the worker is not running (callers report it)."""
        with self._send_lock:
            if self.conn is None or self.state not in (WorkerState.STARTING, WorkerState.READY):
                return False
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                return False
            return True

    def stop(self, reason: str, grace_s: float) -> None:
        """Deliberate stop (shutdown, thermal): ask politely, then SIGTERM, then SIGKILL."""
        with self.lock:
            process = self.process
            was_running = process is not None and process.exitcode is None
            if was_running:
                self.send(Stop())
            self.state, self.detail = WorkerState.STOPPED, reason
        if was_running:
            process.join(grace_s)
            if process.exitcode is None:
                self._signal(signal.SIGTERM)
                process.join(grace_s)
            if process.exitcode is None:
                self._signal(signal.SIGKILL)
                process.join(grace_s)
            self._audit("worker.stop", worker=self.name, pid=process.pid, reason=reason, exitcode=process.exitcode)
            self._on_lost(f"{self.name} worker stopped: {reason}")

    def resume(self) -> None:
        """Leave the deliberate `stopped` state (e.g. the thermal governor releases the LLM)."""
        with self.lock:
            if self.state == WorkerState.STOPPED:
                self.consecutive_failures = 0
                self.state, self._next_start_at = WorkerState.RESTARTING, time.monotonic()

    # ------------------------------------------------------------------ supervision

    def check(self, now: float) -> None:
        """One supervision step; called from the supervisor's loop every tick."""
        with self.lock:
            reader, process = self._reader, self.process
            exited = self.state in _RUNNING and process is not None \
                and process.exitcode is not None
        if exited and reader is not None:
            reader.join(1.0)  # let it deliver the worker's last words (e.g. why it failed) first
        with self.lock:
            state, process = self.state, self.process
            if state in _RUNNING and process is not None and process.exitcode is not None:
                self._exited(now, process.exitcode)
            elif state == WorkerState.STARTING and now - self._started_at > self._t.startup_timeout_s:
                self._stall(now, f"not ready after {self._t.startup_timeout_s:.1f}s")
            elif state == WorkerState.READY:
                self._check_progress(now)
            elif state == WorkerState.STALLED:
                self._escalate_kill(now)
            elif state in (WorkerState.RESTARTING, WorkerState.FAILED) and now >= self._next_start_at:
                self.spawn()

    def _check_progress(self, now: float) -> None:
        silent = now - self._last_heartbeat
        if silent > self._t.liveness_timeout_s:
            self._stall(now, f"no heartbeat for {silent:.1f}s")
            return
        pending = self.pending
        if pending and now - self._progress_at > self._t.stall_timeout(self.name):
            self._stall(now, f"no progress for {now - self._progress_at:.1f}s with {pending} pending")
            return
        if now - self._ready_at > self._t.stable_after_s:
            self.consecutive_failures = 0

    def _stall(self, now: float, reason: str) -> None:
        self.state, self.detail = WorkerState.STALLED, reason
        self._kill_deadline = now + self._t.stop_grace_s
        log.error("%s worker (pid %s) stalled: %s", self.name, self.process.pid, reason)
        self._audit("worker.stalled", worker=self.name, pid=self.process.pid, reason=reason)
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)  # a SIGSTOPped process acts on SIGTERM only once continued

    def _escalate_kill(self, now: float) -> None:
        if not self._killed and self._kill_deadline is not None and now >= self._kill_deadline:
            self._killed = True
            self._signal(signal.SIGKILL)

    def _exited(self, now: float, exitcode: int) -> None:
        pid = self.process.pid
        stalled = self.state == WorkerState.STALLED
        self.process.join(0)
        self.conn = None
        if exitcode == FAILED_EXIT and self._failed_reason:
            self.state, self.detail = WorkerState.FAILED, self._failed_reason
            self._next_start_at = now + self._t.backoff_max_s
            log.error("%s worker refused to serve: %s", self.name, self._failed_reason)
            self._audit("worker.failed", worker=self.name, pid=pid, reason=self._failed_reason)
            self._on_lost(f"{self.name} worker failed: {self._failed_reason}")
            return
        self.consecutive_failures += 1
        delay = min(self._t.backoff_initial_s * 2 ** (self.consecutive_failures - 1), self._t.backoff_max_s)
        cause = self.detail if stalled else f"exited with code {exitcode}"
        self.state, self.detail = WorkerState.RESTARTING, f"{cause}; restarting in {delay:.1f}s"
        self._next_start_at = now + delay
        log.error("%s worker (pid %s) %s", self.name, pid, self.detail)
        self._audit("worker.exit", worker=self.name, pid=pid, exitcode=exitcode, stalled=stalled,
                    restart_in_s=round(delay, 3), consecutive_failures=self.consecutive_failures)
        self._on_lost(f"{self.name} worker {cause}")

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.exitcode is None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------------ messages (reader thread)

    def _read(self, conn: Connection, process: multiprocessing.Process) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if self.process is not process:  # a late message of an old incarnation
                return
            if isinstance(message, Heartbeat):
                self._heartbeat(message)
            elif isinstance(message, Ready):
                self._ready(message.info)
            elif isinstance(message, WorkerFailed):
                self._failed_reason = message.reason
            else:
                self._on_message(message)

    def _heartbeat(self, message: Heartbeat) -> None:
        with self.lock:
            now = time.monotonic()
            previous = self.heartbeat
            if previous is None or message.progress != previous.progress or not previous.pending:
                self._progress_at = now
            self._last_heartbeat = now
            self.heartbeat = message

    def note_work_submitted(self) -> None:
        """The supervisor handed this worker work: the stall clock starts now if it was idle."""
        with self.lock:
            if not self.pending:
                self._progress_at = time.monotonic()

    def _ready(self, info: dict[str, Any]) -> None:
        with self.lock:
            if self.state != WorkerState.STARTING:
                return
            now = time.monotonic()
            self.state, self.detail, self.info = WorkerState.READY, None, info
            self._ready_at = self._last_heartbeat = self._progress_at = now
        self._audit("worker.ready", worker=self.name, pid=self.process.pid,
                    startup_s=round(now - self._started_at, 3), info=info)
        self._on_ready()

    # ------------------------------------------------------------------ status

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.exitcode is None else None

    @property
    def pending(self) -> int:
        """The work waiting for the worker, as its last heartbeat said."""
        return self.heartbeat.pending if self.heartbeat is not None else 0

    @property
    def healthy(self) -> bool:
        """Fit to keep the watchdogs fed: serving, or deliberately/permanently not (a reboot fixes neither)."""
        return self.state in (WorkerState.READY, WorkerState.STOPPED, WorkerState.FAILED)

    def status(self) -> WorkerStatus:
        with self.lock:
            now = time.monotonic()
            beat = self.heartbeat
            return WorkerStatus(
                name=self.name, pid=self.pid, state=self.state, restarts=self.restarts, detail=self.detail,
                cores=self.cores, info=self.info, last_progress=beat.fields() if beat is not None else {},
                last_heartbeat_age_s=round(now - self._last_heartbeat, 3) if beat is not None else None,
                last_progress_age_s=round(now - self._progress_at, 3) if self.state == WorkerState.READY else None,
            )
