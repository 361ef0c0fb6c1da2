"""The site config of `orbox serve --config FILE` (TOML): paths and supervision timings.

The hardware facts (cores, thermal bands, watchdog device, video format) come from the profile;
this file holds what differs per installation or per test: where state and the audit log live,
how fast to declare a stall, overrides of the profile's device paths (a pty instead of
/dev/ttyS1, a fake sysfs root), and the video source and sinks. Every key is optional; an unknown
key, a wrong type or an impossible value is an error naming the file and the dotted key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from appliance.protocol import WORKER_NAMES, WorkerName


class ConfigError(Exception):
    """The config file is unreadable, not TOML, or has a bad key or value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StallTimeouts(_Section):
    """Seconds without forward progress, while work is pending, before a worker counts as stalled.

    Each must exceed that worker's longest single step: a frame for video, a batch for the encoder,
    one n_batch prompt chunk of the biggest model for the LLM (several seconds on a slow CPU).
    """

    video: float = Field(2.0, gt=0)
    encoder: float = Field(30.0, gt=0)
    llm: float = Field(60.0, gt=0)


class SupervisorConfig(_Section):
    state_dir: Path = Path("/var/lib/orbox")
    status_file: Path | None = None  # default: state_dir/status.json
    workers: list[WorkerName] = Field(default_factory=lambda: list(WORKER_NAMES))
    critical_workers: list[WorkerName] = Field(default_factory=lambda: ["video", "llm"])
    tick_s: float = Field(0.05, gt=0, le=1)
    heartbeat_s: float = Field(0.25, gt=0, le=5)
    # A number applies to every worker; a table ([supervisor.stall_timeout_s] llm = 90) sets them one by one.
    stall_timeout_s: StallTimeouts = Field(default_factory=StallTimeouts)
    liveness_timeout_s: float = Field(5.0, gt=0)  # no heartbeat at all: the process is frozen or gone
    startup_timeout_s: float = Field(120.0, gt=0)
    stop_grace_s: float = Field(2.0, gt=0)
    shutdown_timeout_s: float = Field(15.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    stable_after_s: float = Field(30.0, gt=0)


    @field_validator("stall_timeout_s", mode="before")
    @classmethod
    def _one_number_for_every_worker(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {name: value for name in WORKER_NAMES}
        return value

    def stall_timeout(self, worker: WorkerName) -> float:
        return getattr(self.stall_timeout_s, worker)


class AuditConfig(_Section):
    path: Path | None = None  # default: state_dir/audit.jsonl


class ThermalConfig(_Section):
    sysfs_root: Path | None = None  # overrides the profile's thermal.sysfs_root (tests: a fake tree)
    poll_s: float | None = Field(None, gt=0)  # overrides the profile's thermal.poll_s
    use_psutil: bool = True  # add psutil's hwmon readings to the profile's thermal zones
    fan_duty_normal: int = Field(30, ge=0, le=100)
    fan_duty_up: int = Field(100, ge=0, le=100)


class WatchdogConfig(_Section):
    device: str | None = None  # overrides the profile's watchdog.device
    serial_port: str | None = None  # overrides the profile's watchdog.serial_port
    feed_interval_s: float = Field(1.0, gt=0)


class VideoConfig(_Section):
    source: str = "synthetic"  # "synthetic", a video file, or /dev/videoN
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    fps: float | None = Field(None, gt=0)
    strength: float = Field(1.0, ge=0, le=1)
    sink_file: Path | None = None
    shm_name: str | None = None  # default: orbox-video-<supervisor pid>
    ring_slots: int = Field(4, ge=2, le=64)
    preload_frames: int = Field(120, ge=1)
    preview_fps: float = Field(5.0, gt=0)
    preview_width: int = Field(640, gt=0)
    stats_window: int = Field(600, ge=10)
    # SCHED_FIFO priority of the video worker (needs CAP_SYS_NICE; falls back to normal without it).
    # On a shared 2-core VM it is what keeps 1080p60 at p99 <= 16.7 ms (python -m appliance.bench_video).
    realtime_priority: int = Field(10, ge=0, le=99)


class LlmConfig(_Section):
    warmup: bool = True
    max_queue: int = Field(32, ge=1)


class HttpConfig(_Section):
    """The local API (issue 7); `orbox serve --host/--port/--keys` override these."""

    host: str = "127.0.0.1"  # bedside devices reach the box over the hospital LAN only if this is changed
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (printed at start-up)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keys_file: Path | None = None  # default: state_dir/api-keys.json
    deadline_s: float = Field(120.0, gt=0)
    max_waiting: int = Field(32, ge=0)


class KbConfig(_Section):
    """Knowledge bases served as `kb:<directory name>` (issue 15); `orbox serve --kb DIR` adds to `paths`."""

    paths: list[Path] = Field(default_factory=list)
    pubkey: Path | None = None  # when set, every KB's manifest signature is checked against this ed25519 key


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class FleetConfig(_Section):
    """The hawkBit DDI client (`orbox fleet run`, docs/images.md#fleet-hawkbit); off unless both
    `server_url` and `target_token` are set.

    The token is a secret: it never appears in a log line or an error message. Plain http is
    accepted only to a loopback address (a local relay or a test server).
    """

    server_url: str | None = None  # e.g. "https://hawkbit.hospital.example:8443"
    tenant: str = Field("DEFAULT", min_length=1)
    controller_id: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9._:-]+$")
    target_token: SecretStr | None = None
    ca_file: Path | None = None  # PEM CA bundle for the server's certificate (a hospital CA); default: the system's
    # pending-action.json, status.json and downloads/. It must be on storage that both slots mount (the data
    # partition): the install is written in one slot and judged in the other.
    work_dir: Path = Path("/data/orbox/fleet")
    poll_default_s: float = Field(300.0, gt=0)  # until the server says config.polling.sleep
    retry_initial_s: float = Field(5.0, gt=0)  # a failed poll or download backs off from here ...
    retry_max_s: float = Field(600.0, gt=0)  # ... doubling up to this
    download_attempts: int = Field(5, ge=1)
    reboot_after_install: bool = False  # default: the new slot boots at the next power cycle, never mid-surgery
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        url = urlsplit(value)
        if url.scheme not in ("https", "http") or not url.hostname or url.query or url.fragment:
            raise ValueError("expected an https:// URL with a host and no query, e.g. https://hawkbit.example:8443")
        if url.scheme == "http" and url.hostname not in LOOPBACK_HOSTS:
            raise ValueError("plain http would send the target token in clear; use https:// "
                             "(http is accepted only to 127.0.0.1, ::1 or localhost)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _all_or_nothing(self) -> FleetConfig:
        given = {"server_url": self.server_url, "target_token": self.target_token, "controller_id": self.controller_id}
        if any(value is not None for value in given.values()):
            missing = [key for key, value in given.items() if value is None]
            if missing:
                raise ValueError(f"the fleet client needs server_url, controller_id and target_token together; "
                                 f"add {', '.join(missing)} to [fleet] or remove the section to keep it off")
        return self

    @property
    def enabled(self) -> bool:
        return self.server_url is not None and self.target_token is not None


class ApplianceConfig(_Section):
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    thermal: ThermalConfig = Field(default_factory=ThermalConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    kb: KbConfig = Field(default_factory=KbConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)

    @property
    def status_path(self) -> Path:
        return self.supervisor.status_file or self.supervisor.state_dir / "status.json"

    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.supervisor.state_dir / "audit.jsonl"

    @property
    def keys_path(self) -> Path:
        return self.http.keys_file or self.supervisor.state_dir / "api-keys.json"


def load_config(path: str | os.PathLike | None) -> ApplianceConfig:
    """Parse and validate a config file; None gives the defaults."""
    if path is None:
        return ApplianceConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return parse_config(data, str(path))


def parse_config(data: dict, source: str) -> ApplianceConfig:
    try:
        return ApplianceConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            found = "<hidden>" if key.endswith("target_token") else error.get("input")
            detail = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            if isinstance(error.get("input"), dict):  # a rule over a whole section: name it, never dump it
                problems.append(f"{source}: section [{key}]: {detail}")
                continue
            problems.append(f"{source}: key '{key}': {detail}, found {found!r}")
        raise ConfigError("\n".join(problems)) from exc
