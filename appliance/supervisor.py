"""The supervisor: starts the video, encoder and LLM workers that the config and the model bundle call
for, in that order, keeps them alive,
feeds the watchdogs only while they really work, sheds heat, and exposes the in-process API.

In-process API (used by the HTTP layer, issue 7, which runs in this same process)::

    sup = Supervisor(profile, bundle_dir, config); sup.start(); sup.wait_started(timeout)
    sup.llm        LlmClient: submit(params, kind, loop=...) -> TokenStream, cancel(id), queue_depth(),
                   admission() (raises Unavailable -> 503 + Retry-After)
    sup.encoder    EncoderClient: embed(texts), rerank(query, docs), submit_embed(texts) -> Future
    sup.video      VideoClient: latest_jpeg(), stats()
    sup.governor   ThermalGovernor: band, admission_paused, status()
    sup.audit      AuditLog: append(event, **fields) for per-request records
    sup.readiness() appliance.readiness.Readiness: ready, or the reason class (the one verdict of every view)
    sup.kbs        KbRegistry: the served knowledge bases (opened by `orbox serve` once the workers start)
    sup.status()   {"ready", "readiness", "workers": [{"name", "pid", "state", "restarts", ...}], "thermal", ...}
                   (each worker entry is a protocol.WorkerStatus; status.json holds the same)
    sup.stop()     ordered shutdown (LLM and encoder first, video last), bounded by shutdown_timeout_s

Everything the supervisor does to a worker is recorded in the audit log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance.audit import AuditLog
from appliance.clients import EncoderClient, LlmClient, VideoClient
from appliance.config import ApplianceConfig
from appliance.frame_ring import FrameRing, frame_shape
from appliance.knowledge_bases import KbRegistry
from appliance.mcu_client import McuClient, McuError
from appliance.model_bundle import manifest_sha256
from appliance.protocol import Configure, Configured, WorkerName, WorkerState, WorkerStatus
from appliance.readiness import Readiness, assess
from appliance.sdnotify import SystemdNotifier
from appliance.thermal import ThermalGovernor, ThermalSensors, Transition
from appliance.thermal_census import take_census
from appliance.video_worker import video_format
from appliance.watchdogs import WatchdogFeeder
from appliance.worker_handle import WorkerHandle, WorkerReply
from appliance.worker_process import WorkerSpec
from appliance.workers import WORKERS, system_cores_off_video, workers_to_start
from hw_profiles import Profile
from primitives.atomic import atomic_write_text

log = logging.getLogger("orbox.supervisor")
STATUS_EVERY_S = 0.5


def keep_off_video_cores(profile: Profile) -> list[int]:
    """Pin the calling (supervisor) process to the system cores that are not video cores.

    The HTTP server, token routing and the JPEG preview then never compete with the video worker.
    Workers re-pin themselves to their own cores. Returns the affinity set.
    """
    cores = system_cores_off_video(profile.cpu)
    online = set(range(os.cpu_count() or 1))
    affinity = [c for c in cores if c in online] or sorted(online)
    os.sched_setaffinity(0, affinity)
    return affinity


class Supervisor:
    def __init__(self, profile: Profile, bundle_dir: str | os.PathLike, config: ApplianceConfig,
                 environ: dict[str, str] | None = None, allow_missing_sensors: bool = False):
        """Raises MissingSensorError before opening anything when a required sensor is missing."""
        sysfs_root = Path(config.thermal.sysfs_root or profile.thermal.sysfs_root)
        census = take_census(profile.thermal, sysfs_root, allow_missing_sensors)
        self.profile = profile
        self.bundle_dir = str(bundle_dir)
        self.config = config
        self.started_at = time.monotonic()
        self.audit = AuditLog(config.audit_path)
        self.notifier = SystemdNotifier(environ)
        self.mcu, mcu_error = self._open_mcu()
        self.shutdown_reason: str | None = None
        self.shutdown_requested = threading.Event()
        self.started_event = threading.Event()  # every worker spawned and settled once (systemd READY=1)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._order, self.left_out = workers_to_start(config.supervisor.workers, bundle_dir)
        self._to_start: list[WorkerName] = []
        self._starting: WorkerName | None = None
        self._llm_reduced = False
        self._stop_reason = "requested"
        self._fan_up = False
        self._next_status = 0.0
        self._last_status_text = ""
        self.manifest_sha256: str | None = None
        self.kbs = KbRegistry(profile, self._audit)

        self.video_format = video_format(profile, config)
        shm_name = config.video.shm_name or f"orbox-video-{os.getpid()}"
        self.ring_path = Path("/dev/shm") / shm_name
        self.ring: FrameRing | None = None
        self.handles = {name: self._make_handle(name) for name in self._order}
        sensors = ThermalSensors(sysfs_root, list(profile.thermal.sources), self.mcu, config.thermal.use_psutil,
                                 mcu_error, census.zones)
        self.governor = ThermalGovernor(
            profile.thermal, sensors, actuator=self, on_transition=self._on_transition,
            poll_s=config.thermal.poll_s or profile.thermal.poll_s, unmanaged=census.unmanaged(profile.name, sensors))
        self.thermal_census = census
        self.llm = LlmClient(self._handle("llm"), lambda: self.governor.admission_paused, config.llm.max_queue)
        self.encoder = EncoderClient(self._handle("encoder"))
        self.video = VideoClient(self._handle("video"), None, self.video_format.pixel_format,
                                 config.video.preview_fps, config.video.preview_width)
        self.feeder = WatchdogFeeder(
            device_path=config.watchdog.device or profile.watchdog.device, timeout_s=profile.watchdog.timeout_s,
            mcu=self.mcu, notifier=self.notifier, feed_interval_s=config.watchdog.feed_interval_s,
            audit=self._audit)

    # ------------------------------------------------------------------ construction helpers

    def _open_mcu(self) -> tuple[McuClient | None, str | None]:
        port = self.config.watchdog.serial_port or self.profile.watchdog.serial_port
        if not port:
            return None, None
        try:
            return McuClient(port, self.profile.watchdog.serial_baud), None
        except McuError as exc:
            log.error("%s", exc)
            return None, str(exc)

    def _handle(self, name: WorkerName) -> WorkerHandle:
        """The named worker's handle; a worker left out by the config gets an inert one."""
        return self.handles.get(name) or self._make_handle(name)

    def _make_handle(self, name: WorkerName) -> WorkerHandle:
        def client() -> LlmClient | EncoderClient | None:  # created after the handles: looked up when called
            return {"llm": self.llm, "encoder": self.encoder}.get(name)

        def on_message(message: WorkerReply) -> None:
            if isinstance(message, Configured):
                self._audit("llm.configured", threads=message.threads, batch=message.batch)
            elif (target := client()) is not None:
                target.dispatch(message)

        def on_lost(reason: str) -> None:
            if (target := client()) is not None:
                target.fail_all(reason)

        def on_ready() -> None:
            if name == "llm" and self._llm_reduced:
                self._configure_llm()

        return WorkerHandle(name, lambda: self._spec(name), self.config.supervisor, self._audit, on_message,
                            on_ready, on_lost)

    def _cores(self, name: WorkerName) -> list[int]:
        return WORKERS[name].cores(self.profile.cpu)

    def _spec(self, name: WorkerName) -> WorkerSpec:
        return WorkerSpec(name=name, runtime=WORKERS[name].runtime, profile=self.profile,
                          bundle_dir=self.bundle_dir, cores=self._cores(name), config=self.config,
                          options={"ring_path": str(self.ring_path)})

    def _audit(self, event: str, **fields: Any) -> None:
        try:
            self.audit.append(event, **fields)
        except OSError as exc:  # a full disk must not take the video down with it
            log.error("audit log %s: %s", self.audit.path, exc)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.manifest_sha256 = manifest_sha256(self.bundle_dir)
        self._audit("supervisor.start", pid=os.getpid(), profile=self.profile.name, bundle=self.bundle_dir,
                    manifest_sha256=self.manifest_sha256, workers=self._order, left_out=self.left_out,
                    thermal_unmanaged=self.governor.unmanaged, sensors_missing=list(self.thermal_census.missing))
        for name, why in self.left_out.items():
            log.info("not starting the %s worker: %s", name, why)
        if "video" in self.handles:
            fmt = self.video_format
            self.ring = FrameRing.create(self.ring_path, frame_shape(fmt.width, fmt.height, fmt.pixel_format),
                                         self.config.video.ring_slots)
            self.video.attach_ring(self.ring)
        if self.mcu is not None:
            try:
                cause, resets = self.mcu.reset_cause()
                self._audit("mcu.reset_cause", port=self.mcu.port, cause=cause, resets=resets)
            except McuError as exc:
                self._audit("watchdog.error", watchdog="mcu", error=str(exc))
        self._to_start = list(self._order)
        self.governor.start()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def wait_started(self, timeout_s: float) -> bool:
        """Wait until every worker was spawned and settled once (ready or refused); see readiness() for ready."""
        return self.started_event.wait(timeout_s)

    def request_shutdown(self, reason: str) -> None:
        if self.shutdown_reason is None:
            self.shutdown_reason = reason
            self._audit("supervisor.shutdown_requested", reason=reason)
        self.shutdown_requested.set()

    def stop(self, reason: str = "requested") -> float:
        """Ordered, bounded shutdown; returns the seconds it took."""
        began = time.monotonic()
        self.notifier.notify("STOPPING=1", f"STATUS=stopping: {reason}")
        self._stop_reason = reason
        self._stop_event.set()
        self.governor.stop()
        if self._thread is not None:  # the loop thread stops the workers it spawned (see _stop_workers)
            self._thread.join(timeout=self.config.supervisor.shutdown_timeout_s + 5)
        else:
            self._stop_workers()
        self.feeder.close(clean=True)
        if self.ring is not None:
            self.ring.close()
            self.ring_path.unlink(missing_ok=True)
        if self.mcu is not None:
            self.mcu.close()
        took = time.monotonic() - began
        self._audit("supervisor.stop", reason=reason, took_s=round(took, 3))
        self._publish_status(force=True)
        self.notifier.close()
        self.audit.close()
        return took

    def _stop_workers(self) -> None:
        """LLM and encoder first (in parallel), the surgical video last.

        Runs on the loop thread: workers die with the thread that spawned them (PR_SET_PDEATHSIG),
        so that thread must outlive them.
        """
        grace = min(self.config.supervisor.stop_grace_s, self.config.supervisor.shutdown_timeout_s / 6)
        first = [self.handles[n] for n in ("llm", "encoder") if n in self.handles]
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda handle: handle.stop(self._stop_reason, grace), first))
        if "video" in self.handles:
            self.handles["video"].stop(self._stop_reason, grace)

    # ------------------------------------------------------------------ the work loop

    def _loop(self) -> None:
        tick = self.config.supervisor.tick_s
        while not self._stop_event.is_set():
            try:
                self._start_next()
                now = time.monotonic()
                for handle in self.handles.values():
                    handle.check(now)
                self._settle()
                healthy, why_not = self._critical_health()
                self.feeder.tick(self.started_event.is_set() and healthy, why_not)
                self._publish_status()
            except Exception:  # the loop feeds the watchdogs: log and go on rather than die silently
                log.exception("supervisor loop")
            self._stop_event.wait(tick)
        self._stop_workers()

    def _start_next(self) -> None:
        """Start workers one by one in order, each once the previous one settled (ready or refused)."""
        if not self._to_start:
            return
        if self._starting is not None and self.handles[self._starting].state == WorkerState.STARTING:
            return
        name = self._to_start.pop(0)
        self._starting = name
        if name == "llm" and "llm_stop" in self.governor.active:
            self.handles[name].state = WorkerState.STOPPED
            self.handles[name].detail = "thermal: LLM stopped before start"
            return
        self.handles[name].spawn()

    def _settle(self) -> None:
        """READY=1 once start-up is over, ready or not: withholding it would make systemd kill the box, video
        and all, after TimeoutStartSec. STATUS= then says whether it is ready, as /health/ready does."""
        if self.started_event.is_set() or self._to_start:
            return
        if all(handle.state != WorkerState.STARTING for handle in self.handles.values()):
            self.started_event.set()
            status = self.status()
            self._audit("supervisor.started", ready=status["ready"], reason=status["readiness"]["reason"],
                        workers={w["name"]: w["state"] for w in status["workers"]})
            self.notifier.notify("READY=1", f"STATUS={self._status_line(status)}")

    def _critical_health(self) -> tuple[bool, str]:
        bad = [f"{h.name} {h.state}" + (f" ({h.detail})" if h.detail else "")
               for name, h in self.handles.items()
               if name in self.config.supervisor.critical_workers and not h.healthy]
        return not bad, "; ".join(bad)

    # ------------------------------------------------------------------ thermal actuator

    def apply_thermal_action(self, action: str, active: bool, reason: str) -> None:
        self._audit("thermal.action", action=action, active=active, reason=reason)
        if action == "fan_up":
            self._set_fan(active)
        elif action == "llm_reduce_threads":
            self._llm_reduced = active
            self._configure_llm()
        elif action == "llm_stop" and "llm" in self.handles:
            if active:
                self.handles["llm"].stop(f"thermal: {reason}", self.config.supervisor.stop_grace_s)
            else:
                self.handles["llm"].resume()
        elif action == "shutdown":
            self.request_shutdown(f"thermal: {reason}")
        # llm_pause_admission needs no action: LlmClient.admission() reads the governor.

    def _configure_llm(self) -> None:
        llm = self.profile.llm
        factor = 2 if self._llm_reduced else 1
        threads = max(1, min(llm.threads, len(self._cores("llm"))) // factor)
        if "llm" in self.handles:
            self.handles["llm"].send(Configure(threads, max(1, llm.batch // factor)))

    def _set_fan(self, up: bool) -> None:
        self._fan_up = up
        duty = self.config.thermal.fan_duty_up if up else self.config.thermal.fan_duty_normal
        if self.mcu is not None:
            try:
                self.mcu.set_fan(duty)
            except McuError as exc:
                self._audit("thermal.fan_error", error=str(exc))
        root = Path(self.config.thermal.sysfs_root or self.profile.thermal.sysfs_root)
        for device in sorted(root.glob("cooling_device*")):
            try:
                state = (device / "max_state").read_text().strip() if up else "0"
                (device / "cur_state").write_text(state)
            except OSError as exc:
                self._audit("thermal.fan_error", device=str(device), error=str(exc))

    def _on_transition(self, transition: Transition) -> None:
        self._audit("thermal.transition", from_band=transition.from_band, to_band=transition.to_band,
                    temperature_c=transition.temperature_c, reason=transition.reason,
                    actions_on=transition.actions_on, actions_off=transition.actions_off)

    # ------------------------------------------------------------------ status

    def readiness(self) -> Readiness:
        return self._assess([handle.status() for handle in self.handles.values()])

    def _assess(self, workers: list[WorkerStatus]) -> Readiness:
        return assess(workers, self.started_event.is_set(), "llm" in self.handles and self.governor.admission_paused,
                      self.shutdown_requested.is_set() or self._stop_event.is_set())

    def status(self) -> dict[str, Any]:
        workers = [handle.status() for handle in self.handles.values()]
        verdict = self._assess(workers)
        return {
            "pid": os.getpid(),
            "profile": self.profile.name,
            "bundle": {"path": self.bundle_dir, "manifest_sha256": self.manifest_sha256,
                       "workers_left_out": self.left_out},
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "ready": verdict.ready,
            "readiness": {"reason": verdict.reason, "problems": verdict.problems},
            "started": self.started_event.is_set(),
            "shutdown": self.shutdown_reason,
            "workers": [asdict(worker) for worker in workers],
            "thermal": {**self.governor.status(), "fan_up": self._fan_up},
            "watchdog": self.feeder.status(),
            "llm": {"queue_depth": self.llm.queue_depth(), "admission_paused": self.governor.admission_paused,
                    "reduced": self._llm_reduced},
            "video": self.video.stats(),
            "knowledge_bases": self.kbs.status(),
        }

    def _publish_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_status:
            return
        self._next_status = now + STATUS_EVERY_S
        status = self.status()
        atomic_write_text(self.config.status_path, json.dumps(status, indent=2, default=str) + "\n")
        text = self._status_line(status)
        if text != self._last_status_text:
            self._last_status_text = text
            self.notifier.notify(f"STATUS={text}")

    @staticmethod
    def _status_line(status: dict[str, Any]) -> str:
        """systemd's STATUS=: the readiness verdict first, as /health/ready gives it, then each worker."""
        verdict = "ready" if status["ready"] else f"not ready ({status['readiness']['reason']})"
        workers = ", ".join(f"{w['name']}={w['state']}" for w in status["workers"])
        thermal = status["thermal"]
        band = f"unmanaged ({thermal['unmanaged']})" if thermal["unmanaged"] else thermal["band"] or "normal"
        return f"{verdict}: {workers}; thermal={band}"
