"""Fixtures for the appliance tests: a real tiny GGUF bundle, fake sysfs, site configs, a running supervisor.

The bundle is built once per test session (and shared between xdist workers through a file lock):
a tiny random-weight Qwen2 checkpoint from quantize.tiny_models, converted to GGUF and quantized
to Q8_0 by the quantize package's converter, then recorded in a manifest by quantize.manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BuildOnce, orbox_cli

GGUF_RELPATH = "llm/tiny-q8_0.gguf"


def _build_bundle(target: Path) -> None:
    from quantize.llm.export import convert_checkpoint
    from quantize.llm.quantize import quantize_gguf
    from quantize.manifest import update_manifest
    from quantize.tiny_models import build_tiny_llm

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        checkpoint = build_tiny_llm(work / "hf", arch="qwen2", train_steps=0)
        convert_checkpoint(checkpoint, work / "f16.gguf", "f16")
        (target / "llm").mkdir()
        quantize_gguf(work / "f16.gguf", target / GGUF_RELPATH, "q8_0", 1)
    update_manifest(target, "dev", "llm", {"source": "tiny qwen2, random weights"},
                    {GGUF_RELPATH: {"kind": "gguf", "role": "llm", "quant_type": "q8_0"}})


@pytest.fixture(scope="session")
def tiny_bundle(build_once: BuildOnce) -> Path:
    """A read-only reference bundle; copy it (`bundle_copy`) before modifying anything."""
    return build_once("appliance-tiny-bundle", _build_bundle)


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return copy


def write_zone(root: Path, celsius: float | None, zone: str = "thermal_zone0") -> None:
    """A fake /sys/class/thermal zone; None makes its temp file unreadable (removed)."""
    directory = root / zone
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / "temp"
    if celsius is None:
        temp.unlink(missing_ok=True)
        return
    tmp = directory / ".temp.tmp"
    tmp.write_text(f"{round(celsius * 1000)}\n")
    os.replace(tmp, temp)


def site_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A TOML config with fast supervision timings for tests; `sections` override keys."""
    base: dict[str, dict[str, Any]] = {
        "supervisor": {"state_dir": str(tmp_path / "state"), "stall_timeout_s": 1.0, "liveness_timeout_s": 1.0,
                       "stop_grace_s": 0.5, "backoff_initial_s": 0.2, "backoff_max_s": 30.0, "heartbeat_s": 0.1},
        "thermal": {"sysfs_root": str(tmp_path / "sys"), "poll_s": 0.1, "use_psutil": False},
        "video": {"width": 160, "height": 128, "fps": 30, "preload_frames": 8},
        "http": {"port": 0},  # `orbox serve` also starts the local API; never collide on a fixed port
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    if not (tmp_path / "sys" / "thermal_zone0" / "temp").exists():
        write_zone(tmp_path / "sys", 40.0)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    path = tmp_path / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def worker(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in status["workers"] if w["name"] == name)


def audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@contextlib.contextmanager
def running_supervisor(bundle: Path, config: Path, profile: str = "dev", environ: dict[str, str] | None = None,
                       ready_timeout_s: float = 60.0):
    """A real Supervisor in this process with real worker processes; always stopped afterwards."""
    from appliance.config import load_config
    from appliance.supervisor import Supervisor
    from hw_profiles import load_profile

    supervisor = Supervisor(load_profile(profile), bundle, load_config(config), environ=environ or {})
    supervisor.start()
    try:
        assert supervisor.wait_started(ready_timeout_s), supervisor.status()
        yield supervisor
    finally:
        supervisor.stop("test finished")


def pid_alive(pid: int) -> bool:
    """True for a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class McuSim:
    """`orbox mcu-sim` running on a pty; `events()` reads what it recorded."""

    def __init__(self, tmp_path: Path, timeout_s: float = 2.0, temps: list[float | None] | None = None):
        self.link = tmp_path / "mcu.tty"
        self.events_file = tmp_path / "mcu-events.jsonl"
        self.temps_file = tmp_path / "mcu-temps.json"
        self.set_temps(temps or [41.0, 43.5])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orbox", "mcu-sim", "--link", str(self.link), "--timeout", str(timeout_s),
             "--temps-file", str(self.temps_file), "--events", str(self.events_file)],
            stderr=subprocess.PIPE, text=True)
        wait_for(self.link.exists, 30, "the MCU simulator's pty link")

    def set_temps(self, temps: list[float | None]) -> None:
        tmp = self.temps_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(temps))
        os.replace(tmp, self.temps_file)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        records = [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]
        return [r for r in records if name is None or r["event"] == name]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def mcu_sim(tmp_path: Path) -> Iterator[McuSim]:
    sim = McuSim(tmp_path)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def encoder_bundle(tiny_bundle: Path, tiny_bert: Path, build_once: BuildOnce) -> Path:
    """The tiny LLM bundle plus an INT8 tiny-BERT embedding encoder built by `orbox quantize encoder`."""
    def build(bundle: Path) -> None:
        shutil.copytree(tiny_bundle, bundle, dirs_exist_ok=True)
        gates = ["--min-speedup", "0", "--min-cosine", "0", "--mean-cosine", "0", "--min-top5", "0",
                 "--min-top1", "0"]  # a random tiny model: the gates are issue 5's tests, not ours
        result = orbox_cli("quantize", "encoder", "--model", str(tiny_bert), "--profile", "dev", "--out", str(bundle),
                       "--task", "embedding", *gates)
        assert result.returncode == 0, result.stderr

    return build_once("appliance-encoder-bundle", build)
