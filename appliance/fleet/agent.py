"""One hawkBit controller on the box: poll, report attributes, download, install through RAUC, and
close each action only once the new slot has booted and been marked good (or has fallen back).

One action at a time: while an install waits for its reboot, new deployments wait too. Intermediate
feedback (download, installing, installed) is best effort; the final feedback is retried on every
poll until the server has it, because the pending-action file is removed only then.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.config import FleetConfig
from appliance.fleet.ddi import Artifact, DdiClient, DdiError, DeploymentBase, Execution, Finished, Poll
from appliance.fleet.download import DownloadError, fetch_artifact
from appliance.fleet.pending import PendingAction, PendingError, PendingStore, decide
from appliance.fleet.rauc import Rauc, RaucError, RaucStatus
from primitives.atomic import atomic_write_text

log = logging.getLogger("orbox.fleet")
BUNDLE_SUFFIX = ".raucb"
GONE = (404, 410)  # the server no longer has this action open: nothing left to report to


def read_boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def systemctl_reboot() -> None:
    subprocess.run(["systemctl", "reboot"], check=True)


@dataclass
class Box:
    """What the agent needs from the machine; tests pass their own."""

    rauc: Rauc
    attributes: Callable[[RaucStatus], dict[str, str]]
    boot_id: Callable[[], str] = read_boot_id
    reboot: Callable[[], None] = systemctl_reboot


class FleetAgent:
    def __init__(self, config: FleetConfig, client: DdiClient, box: Box, work_dir: Path) -> None:
        self.config = config
        self.client = client
        self.box = box
        self.work_dir = work_dir
        self.pending = PendingStore(work_dir / "pending-action.json")
        self.status_path = work_dir / "status.json"

    def cycle(self) -> float:
        """One poll and whatever it asks for; returns the seconds until the next poll."""
        poll = self.client.poll()
        wait = poll.sleep_s or self.config.poll_default_s
        waiting = self.pending.load()
        closed_now = waiting is not None and self._settle(waiting) is None
        waiting = None if closed_now else waiting
        if poll.config_data_href:
            self.client.put_config_data(self.box.attributes(self.box.rauc.status()))
            log.info("fleet: sent device attributes")
        if poll.cancel_href:
            self._cancel(poll, waiting)
        elif poll.deployment_href and waiting is None and not closed_now:  # after a close, this poll is stale
            self._deploy(poll)
        self._write_status(wait, None)
        return wait

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a failed cycle backs off from retry_initial_s to retry_max_s."""
        delay = self.config.retry_initial_s
        while not stop.is_set():
            try:
                wait = self.cycle()
                delay = self.config.retry_initial_s
            except (DdiError, RaucError, PendingError, OSError) as exc:
                log.warning("fleet: %s; next try in %.0f s", exc, delay)
                self._write_status(delay, str(exc))
                wait, delay = delay, min(delay * 2, self.config.retry_max_s)
            stop.wait(wait)

    def _settle(self, action: PendingAction) -> PendingAction | None:
        """Report the install in flight if its outcome is known now; None once it is reported."""
        verdict = decide(action, self.box.rauc.status(), self.box.boot_id())
        if verdict is None:
            log.info("fleet: action %s (version %s, slot %s) waits for its boot and mark-good", action.action_id,
                     action.version, action.target_slot)
            return action
        try:
            self.client.feedback("deploymentBase", action.action_id, "closed",
                                 "success" if verdict.success else "failure", verdict.details)
        except DdiError as exc:
            if exc.status not in GONE:
                raise
            log.warning("fleet: action %s is no longer open on the server (%s); dropping its result",
                        action.action_id, exc)
        log.info("fleet: action %s closed, %s: %s", action.action_id, "success" if verdict.success else "failure",
                 "; ".join(verdict.details))
        self.pending.clear()
        return None

    def _cancel(self, poll: Poll, waiting: PendingAction | None) -> None:
        cancel = self.client.cancel_action(poll.cancel_href)
        stop_id = cancel.cancel_action.stop_id
        if waiting is not None and waiting.action_id == stop_id:
            self._tell("cancelAction", cancel.id, "rejected", "none",
                       [f"version {waiting.version} is already written to slot {waiting.target_slot}; "
                        f"its result follows after the next boot"])
        else:
            self._tell("cancelAction", cancel.id, "closed", "success",
                       [f"action {stop_id} canceled; nothing of it was installed"])

    def _deploy(self, poll: Poll) -> None:
        base = self.client.deployment(poll.deployment_href)
        found = self._bundle(base)
        if isinstance(found, str):
            self._tell("deploymentBase", base.id, "closed", "failure", [found])
            return
        version, artifact = found
        deployment = base.deployment
        if deployment.download == "skip":
            return
        sha256, url = artifact.hashes["sha256"].lower(), self._download_link(artifact)
        self._tell("deploymentBase", base.id, "download", "none", [f"downloading {artifact.filename}"])
        try:
            bundle = fetch_artifact(self.client, url, sha256, artifact.size, self.work_dir / "downloads",
                                    attempts=self.config.download_attempts, backoff_s=self.config.retry_initial_s,
                                    backoff_max_s=self.config.retry_max_s)
        except DownloadError as exc:
            self._tell("deploymentBase", base.id, "closed", "failure", [f"download failed: {exc}"])
            return
        self._tell("deploymentBase", base.id, "downloaded", "none", [f"{artifact.filename}: sha256 {sha256} verified"])
        if deployment.update == "skip" or deployment.maintenance_window == "unavailable":
            log.info("fleet: action %s downloaded; installation waits for the server (update=%s, window=%s)",
                     base.id, deployment.update, deployment.maintenance_window)
            return
        self._install(base.id, version, sha256, bundle)

    def _install(self, action_id: str, version: str, sha256: str, bundle: Path) -> None:
        status = self.box.rauc.status()
        target = status.other_slot()
        action = PendingAction(action_id, version, sha256, self.box.boot_id(), status.booted, target.bootname,
                               target.name, "installing")
        self.pending.save(action)  # before RAUC writes anything: a power cut mid-write is still reported
        self._tell("deploymentBase", action_id, "proceeding", "none",
                   [f"installing version {version} to slot {target.bootname} ({target.name})"])
        try:
            self.box.rauc.install(bundle)
        except RaucError as exc:
            self.pending.clear()
            bundle.unlink(missing_ok=True)
            self._tell("deploymentBase", action_id, "closed", "failure",
                       [f"RAUC refused version {version}; slot {status.booted} keeps running: {exc}"])
            return
        self.pending.save(PendingAction(**{**asdict(action), "phase": "installed"}))
        bundle.unlink(missing_ok=True)
        when = "now" if self.config.reboot_after_install else "at the next reboot"
        self._tell("deploymentBase", action_id, "proceeding", "none",
                   [f"version {version} written to slot {target.bootname}; it boots {when}, and the result is "
                    f"reported after its self-check and mark-good"])
        log.info("fleet: action %s installed to slot %s; boots %s", action_id, target.bootname, when)
        if self.config.reboot_after_install:
            self.box.reboot()

    @staticmethod
    def _bundle(base: DeploymentBase) -> tuple[str, Artifact] | str:
        """The one RAUC bundle of the deployment, or why there is none that can be installed."""
        found = [(chunk.version, artifact) for chunk in base.deployment.chunks for artifact in chunk.artifacts
                 if artifact.filename.endswith(BUNDLE_SUFFIX)]
        if len(found) != 1:
            names = [artifact.filename for chunk in base.deployment.chunks for artifact in chunk.artifacts]
            return f"expected exactly one {BUNDLE_SUFFIX} artifact in action {base.id}, found {names}"
        version, artifact = found[0]
        if len(artifact.hashes.get("sha256", "")) != 64:
            return f"{artifact.filename}: the server gave no sha256, so the download could not be verified"
        if not {"download", "download-http"} & set(artifact.links):
            return f"{artifact.filename}: the server gave no download link"
        return version, artifact

    def _download_link(self, artifact: Artifact) -> str:
        """The https link; the plain http one only when the server itself is plain http (loopback)."""
        plain = (self.config.server_url or "").startswith("http://")
        names = ("download", "download-http") if not plain else ("download-http", "download")
        return next(artifact.links[name].href for name in names if name in artifact.links)

    def _tell(self, resource: str, action_id: str, execution: Execution, finished: Finished,
              details: list[str]) -> None:
        """Feedback that may be lost: logged, and a failure to send it does not stop the install."""
        log.info("fleet: action %s %s/%s: %s", action_id, execution, finished, "; ".join(details))
        try:
            self.client.feedback(resource, action_id, execution, finished, details)
        except DdiError as exc:
            log.warning("fleet: feedback for action %s not delivered: %s", action_id, exc)

    def _write_status(self, next_poll_s: float, error: str | None) -> None:
        try:
            waiting = self.pending.load()
        except PendingError:
            waiting = None  # the poll loop reports the unreadable file itself
        atomic_write_text(self.status_path, json.dumps({
            "server": self.config.server_url, "controller_id": self.config.controller_id,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"), "next_poll_s": next_poll_s,
            "last_error": error, "pending": asdict(waiting) if waiting else None,
        }, indent=1) + "\n")
