"""Linux watchdog device (over a FIFO standing in for /dev/watchdog), sd_notify over a real unix
datagram socket, and the site config's error messages."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from appliance.sdnotify import SystemdNotifier
from appliance.watchdog_dev import LinuxWatchdog, WatchdogError


def test_device_feeds_and_magic_close(tmp_path: Path) -> None:
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    received = bytearray()

    def read_all() -> None:
        with open(fifo, "rb") as reader:
            while chunk := reader.read(1):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    device = LinuxWatchdog(str(fifo), timeout_s=15)
    assert device.timeout_s is None and "does not support WDIOC_SETTIMEOUT" in device.timeout_note
    for _ in range(3):
        device.feed()
    device.close(magic=True)
    reader.join(5)
    assert bytes(received) == b"\0\0\0V"


def test_device_closed_after_a_crash_is_not_disarmed(tmp_path: Path) -> None:
    target = tmp_path / "watchdog"
    target.write_bytes(b"")
    device = LinuxWatchdog(str(target), timeout_s=15)
    device.feed()
    device.close(magic=False)
    assert target.read_bytes() == b"\0"  # no 'V': the board will reset


def test_missing_device_is_named(tmp_path: Path) -> None:
    with pytest.raises(WatchdogError, match=r"watchdog device .*/watchdog0: cannot open"):
        LinuxWatchdog(str(tmp_path / "watchdog0"), timeout_s=15)


def test_sd_notify_reaches_a_unix_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
        assert notifier.enabled and notifier.watchdog_interval_s == 1.5
        assert notifier.notify("READY=1", "STATUS=serving")
        assert notifier.notify("WATCHDOG=1")
        assert server.recv(4096) == b"READY=1\nSTATUS=serving"
        assert server.recv(4096) == b"WATCHDOG=1"
    finally:
        server.close()


def test_sd_notify_is_a_no_op_without_systemd() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False
    other = SystemdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None  # the watchdog is meant for another process


@pytest.mark.parametrize(("text", "expected"), [
    ("[supervisor\nstall_timeout_s = 1", "not valid TOML"),
    ("[supervisor]\nstall_timout_s = 1\n", "key 'supervisor.stall_timout_s': unknown key"),
    ("[supervisor]\nstall_timeout_s = 'soon'\n", "key 'supervisor.stall_timeout_s': Input should be a valid"),
    ("[supervisor.stall_timeout_s]\nlm = 9\n", "key 'supervisor.stall_timeout_s.lm': unknown key"),
    ("[thermal]\nfan_duty_up = 150\n", "key 'thermal.fan_duty_up': Input should be less than or equal to 100"),
    ("[video]\nsource = 3\n", "key 'video.source'"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_config_defaults_and_derived_paths(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(f"[supervisor]\nstate_dir = '{tmp_path}'\n")
    config = load_config(path)
    assert config.status_path == tmp_path / "status.json" and config.audit_path == tmp_path / "audit.jsonl"
    assert config.supervisor.workers == ["video", "encoder", "llm"]
