"""Audit log: hash chain, tamper detection, kill -9 durability, torn-tail recovery, `orbox audit verify`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import orbox_cli

from appliance.audit import AuditLog, verify_log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_chain_verifies_and_links_each_record_to_the_previous(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        first = log.append("worker.start", worker="llm", pid=42)
        second = log.append("thermal.transition", from_band=None, to_band="warm")
    assert second["prev"] == first["hash"] and first["prev"] == "0" * 64
    assert [r["seq"] for r in map(json.loads, _lines(path))] == [0, 1]
    with AuditLog(path) as reopened:  # a new writer continues the same chain
        third = reopened.append("supervisor.stop", reason="test")
    assert third["prev"] == second["hash"] and third["seq"] == 2
    assert verify_log(path) == (3, [])


def test_edit_delete_and_reorder_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for index in range(4):
            log.append("event", index=index)
    lines = _lines(path)

    path.write_text("".join(lines).replace('"index":2', '"index":7'))
    assert "hash does not match" in verify_log(path)[1][0] and ":3:" in verify_log(path)[1][0]

    path.write_text("".join(lines[:1] + lines[2:]))
    assert any("seq 2, expected 1" in p for p in verify_log(path)[1])

    path.write_text("".join([lines[1], lines[0], *lines[2:]]))
    assert verify_log(path)[1]


def test_kill_9_during_appends_leaves_no_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys; from appliance.audit import AuditLog\n"
        "log = AuditLog(sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    log.append('load', i=i, pad='x' * 3000); i += 1\n"), str(path)])
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    count, problems = verify_log(path)
    assert problems == [] and count > 50
    assert path.read_bytes().endswith(b"\n")


def test_torn_tail_after_power_loss_is_truncated_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append("a")
        log.append("b")
    with open(path, "ab") as handle:
        handle.write(b'{"seq":2,"ts":"2026-')  # what a power cut mid-write could leave behind
    assert "torn last line" in verify_log(path)[1][0]
    with AuditLog(path) as log:
        log.append("c")
    records = [json.loads(line) for line in _lines(path)]
    assert [r["event"] for r in records] == ["a", "b", "audit.torn_tail_truncated", "c"]
    assert records[2]["fields"]["bytes"] == 20
    assert verify_log(path) == (4, [])


def test_cli_verify_reports_ok_and_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append("one")
        log.append("two")
    ok = orbox_cli("audit", "verify", str(path))
    assert ok.returncode == 0 and "2 records, chain intact" in ok.stdout
    path.write_text(path.read_text().replace('"two"', '"TWO"'))
    bad = orbox_cli("audit", "verify", str(path))
    assert bad.returncode == 1 and f"{path}:2" in bad.stderr and "Traceback" not in bad.stderr
    missing = orbox_cli("audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
