"""`orbox serve` as a real process: sd_notify, SIGTERM shutdown within the bound, no orphans, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api_data.fixtures import serve
from appliance_data.fixtures import (
    audit_events,
    pid_alive,
    site_config,
    wait_for,
)
from conftest import orbox_cli

from appliance.audit import verify_log
from hw_profiles.loader import PROFILES_DIR


def _read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def test_serve_notifies_systemd_and_stops_cleanly_on_sigterm(tiny_bundle: Path, tmp_path: Path) -> None:
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(0.2)
    config = site_config(tmp_path, supervisor={"shutdown_timeout_s": 6.0})
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}
    serve = subprocess.Popen([sys.executable, "-m", "orbox", "serve", "--profile", "dev", "--bundle",
                              str(tiny_bundle), "--config", str(config)], env=env, stderr=subprocess.PIPE, text=True)
    messages: list[str] = []

    def received(wanted: str) -> bool:
        try:
            messages.extend(notify.recv(4096).decode().split("\n"))
        except TimeoutError:
            pass
        return any(m.startswith(wanted) for m in messages)

    try:
        wait_for(lambda: received("READY=1"), 60, "READY=1")
        wait_for(lambda: received("WATCHDOG=1") and messages.count("WATCHDOG=1") >= 3, 10, "WATCHDOG=1 pings")
        status = wait_for(lambda: (s := _read_status(tmp_path / "state" / "status.json")) and s["ready"] and s,
                          10, "the status file")
        # The tiny bundle holds only an LLM: no encoder worker is started, and the box is ready without one.
        assert {w["name"]: w["state"] for w in status["workers"]} == {"video": "ready", "llm": "ready"}
        assert status["readiness"] == {"reason": None, "problems": []}
        assert status["bundle"]["workers_left_out"] == {"encoder": f"{tiny_bundle}/manifest.json lists no encoder "
                                                                   "(encoder/<role>/encoder.json)"}
        assert any(m.startswith("STATUS=ready: video=ready, llm=ready") for m in messages)
        pids = [w["pid"] for w in status["workers"] if w["pid"]]
        assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
        affinity = {w["name"]: os.sched_getaffinity(w["pid"]) for w in status["workers"] if w["pid"]}
        assert affinity == {"video": {0}, "llm": {1}}  # the dev profile: video alone on core 0
        assert os.sched_getaffinity(serve.pid) == {1}  # the supervisor stays off the video core
        video = next(w for w in status["workers"] if w["name"] == "video")
        if os.geteuid() == 0:  # SCHED_FIFO needs CAP_SYS_NICE; CI and the box run as root
            assert os.sched_getscheduler(video["pid"]) == os.SCHED_FIFO
            assert video["info"]["scheduling"] == "SCHED_FIFO 10"
        else:
            assert video["info"]["scheduling"].startswith("normal (SCHED_FIFO 10 refused")
        began = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=10) == 0
        assert time.monotonic() - began < 6.0  # supervisor.shutdown_timeout_s
        wait_for(lambda: received("STOPPING=1"), 3, "STOPPING=1")
    finally:
        if serve.poll() is None:
            serve.kill()
        notify.close()
    assert not any(pid_alive(pid) for pid in pids)  # no orphans
    assert "stopped in" in serve.stderr.read()
    assert not any(Path("/dev/shm").glob(f"orbox-video-{serve.pid}"))
    audit = tmp_path / "state" / "audit.jsonl"
    assert verify_log(audit)[1] == []
    records = audit_events(audit)
    events = [e["event"] for e in records]
    assert events[0] == "supervisor.start" and events[-1] == "supervisor.stop"
    lifecycle = [(e["event"], e["fields"]["worker"]) for e in records
                 if e["event"] in ("worker.start", "worker.ready", "worker.failed")]
    assert lifecycle[:4] == [("worker.start", "video"), ("worker.ready", "video"), ("worker.start", "llm"),
                             ("worker.ready", "llm")]
    assert next(e for e in records if e["event"] == "supervisor.started")["fields"]["ready"] is True
    assert events.count("worker.stop") == 2 and "watchdog.feeding" in events


def test_orphans_die_with_a_killed_supervisor(tiny_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, supervisor={"workers": ["video", "llm"]})
    serve = subprocess.Popen([sys.executable, "-m", "orbox", "serve", "--profile", "dev", "--bundle",
                              str(tiny_bundle), "--config", str(config), "--video-source", "/dev/video98"],
                             stderr=subprocess.DEVNULL)
    try:
        status = wait_for(lambda: (s := _read_status(tmp_path / "state" / "status.json")) and s["started"] and s,
                          60, "the supervisor to start its workers")
        video, llm = status["workers"]
        assert video["state"] == "failed" and video["detail"].startswith("capture device /dev/video98: not found")
        assert not status["ready"] and status["readiness"]["reason"] == "worker_failed"
        pid = llm["pid"]
        serve.kill()
        serve.wait(10)
        wait_for(lambda: not pid_alive(pid), 5, "the llm worker to die with its supervisor")
    finally:
        if serve.poll() is None:
            serve.kill()


def test_serve_rejects_a_malformed_config_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[watchdog]\nfeed_interval_s = -1\n")
    result = orbox_cli("serve", "--profile", "dev", "--bundle", str(tmp_path), "--config", str(config))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{config}: key 'watchdog.feed_interval_s': Input should be greater than 0" in result.stderr
    config.write_text("[watchdog\n")
    result = orbox_cli("serve", "--profile", "dev", "--bundle", str(tmp_path), "--config", str(config))
    assert result.returncode == 1 and f"{config}: not valid TOML" in result.stderr


def test_serve_rejects_an_unknown_profile(tmp_path: Path) -> None:
    result = orbox_cli("serve", "--profile", "no-such-box", "--bundle", str(tmp_path))
    assert result.returncode == 1 and "no-such-box" in result.stderr and "Traceback" not in result.stderr


def test_dev_without_thermal_zones_serves_an_llm_only_bundle_and_every_view_agrees(tiny_bundle: Path,
                                                                                    tmp_path: Path) -> None:
    # A VM or laptop: no zone at all under the sysfs root. `dev` requires none, so the box runs unmanaged.
    with serve(tiny_bundle, tmp_path, thermal={"sysfs_root": str(tmp_path / "no-zones")}) as server:
        *loading, ready = server.ready_probes  # /health/ready without a key, from the moment it listened
        assert all(code == 503 and body["reason"] == "loading" and retry == "5" for code, body, retry in loading)
        assert ready == (200, {"status": "ready"}, None)
        status = wait_for(lambda: (s := _read_status(server.state_dir / "status.json")) and s["ready"] and s, 2,
                          "status.json (rewritten every 0.5 s) to say ready too")
        assert httpx.get(server.url + "/health/ready").status_code == 200
        assert {w["name"]: w["state"] for w in status["workers"]} == {"video": "ready", "llm": "ready"}
        assert status["thermal"]["managed"] is False and status["thermal"]["band"] is None
        assert status["thermal"]["unmanaged"] == "profile dev requires no sensor"
        assert httpx.get(server.url + "/status/summary").json()["thermal"]["band"] == "unmanaged"
        with server.client() as client:
            assert client.get("/api/status").json()["ready"] is True
            missing = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": ["x"]})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert "thermal: unmanaged (profile dev requires no sensor)" in "".join(server.stderr_lines)


def test_a_box_profile_with_its_sensor_missing_is_refused_naming_it(tiny_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, thermal={"sysfs_root": str(tmp_path / "no-zones")})
    result = orbox_cli("serve", "--profile", "server-avx512-vnni", "--bundle", str(tiny_bundle), "--config",
                       str(config), timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"{PROFILES_DIR / 'server-avx512-vnni.toml'}: thermal.required_sensors: sensor 'thermal_zone*' is "
            f"required, but no readable thermal zone under {tmp_path / 'no-zones'} matches it") in result.stderr
    assert "--allow-missing-sensors" in result.stderr
