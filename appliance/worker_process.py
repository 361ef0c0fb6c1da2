"""What every worker process shares: its spec, CPU pinning, dying with the supervisor, heartbeats.

A worker is a spawned process that talks to the supervisor over one duplex pipe of the messages
in appliance.protocol: it sends `Ready` (loaded and warmed up) or `WorkerFailed` (a permanent
refusal such as a bad sha256 or a missing device; the process then exits with FAILED_EXIT), then
`Heartbeat`s and its worker-specific events; it receives ops, and every worker understands `Stop`.

Liveness and forward progress are separate signals (llama.cpp #27388: a stuck generation while
/health says ok). Heartbeats come from a thread, every `heartbeat_s`, so they keep coming while the
work loop sits in a long C call (a prompt chunk, a dehaze, an ONNX run); only a frozen or dead
process stops them. Each one carries `progress`, a counter the work loop advances only when work
gets done (tokens sampled and prompt chunks evaluated, encoder batches, frames), and `pending`, the
work waiting for it. The supervisor declares a stall when the beats stop (`liveness_timeout_s`),
or when `pending > 0` and `progress` has not moved for that worker's `stall_timeout_s`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from appliance.config import ApplianceConfig
from appliance.protocol import Event, Heartbeat, Op, Stop, WorkerFailed, WorkerName
from hw_profiles import Profile
from primitives.artifacts import ModelBundleError

FAILED_EXIT = 3
_PR_SET_PDEATHSIG = 1


class WorkerFailure(Exception):
    """A permanent reason this worker cannot serve (reported, not retried in a tight loop)."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable for the spawn start method (the runtime class by reference)."""

    name: WorkerName
    runtime: type[WorkerRuntime]
    profile: Profile
    bundle_dir: str
    cores: list[int]
    config: ApplianceConfig
    options: dict[str, Any] = field(default_factory=dict)


class WorkerRuntime:
    """Base of the three workers: owns the pipe, the progress counters and the heartbeat thread."""

    def __init__(self, conn: Connection, spec: WorkerSpec):
        self.conn = conn
        self.spec = spec
        self.profile = spec.profile
        self.stopping = False
        self.progress = 0  # advanced by the work loop only when work gets done
        self.pending = 0  # work waiting for this worker, including the unit in progress
        self._heartbeat_s = spec.config.supervisor.heartbeat_s
        self._send_lock = threading.Lock()

    def run(self) -> None:
        raise NotImplementedError

    def send(self, message: Event) -> None:
        with self._send_lock:
            self.conn.send(message)

    def beat_details(self) -> dict[str, Any]:
        """Worker-specific heartbeat fields (computed on the heartbeat thread)."""
        return {}

    def start_heartbeats(self) -> None:
        """Call once ready: beats until `stopping`, from a daemon thread."""
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self.stopping:
            try:
                self.send(Heartbeat(self.progress, self.pending, self.beat_details()))
            except (OSError, ValueError):  # the supervisor is gone; the work loop notices on its own
                return
            time.sleep(self._heartbeat_s)

    def handle_op(self, message: Op) -> None:
        """Default: understand only Stop; workers extend this."""
        if isinstance(message, Stop):
            self.stopping = True

    def drain_ops(self, timeout_s: float = 0.0) -> None:
        """Handle every waiting supervisor message; wait up to `timeout_s` for the first one."""
        wait = timeout_s
        while self.conn.poll(wait):
            try:
                message = self.conn.recv()
            except EOFError:  # the supervisor is gone
                self.stopping = True
                return
            self.handle_op(message)
            wait = 0.0


def pin_to_cores(cores: list[int]) -> list[int]:
    """Pin this process to the profile's cores that exist here; returns the affinity set.

    Checked against the machine's CPUs, not our inherited affinity: the supervisor itself stays
    off the video cores, and the video worker it spawns must still be able to move onto them.
    """
    online = set(range(os.cpu_count() or 1))
    wanted = [core for core in cores if core in online]
    if not wanted:
        raise WorkerFailure(f"profile cores {cores} do not exist on this machine (CPUs {sorted(online)})")
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as exc:
        raise WorkerFailure(f"cannot pin to cores {wanted} ({exc.strerror}); is a cpuset restricting us?") from exc
    return wanted


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the supervisor dies, so a kill -9 leaves no orphans."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Process entry point (multiprocessing target)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the supervisor, which stops us in order
    try:
        pin_to_cores(spec.cores)
        spec.runtime(conn, spec).run()
    except (WorkerFailure, ModelBundleError) as exc:
        conn.send(WorkerFailed(str(exc)))
        conn.close()
        sys.exit(FAILED_EXIT)
