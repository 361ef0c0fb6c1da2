"""Append-only, hash-chained, fsync'd JSON-lines audit log.

Each line is one record::

    {"event": "worker.restart", "fields": {...}, "hash": H, "prev": H_prev, "seq": n, "ts": "...Z"}

`hash` is the sha256 of the canonical JSON of the record without `hash`, and `prev` is the hash of
the previous line (64 zeros for the first), so deleting, reordering or editing any line breaks the
chain. Every record is written with a single `write()` on an O_APPEND descriptor and fsync'd
before `append` returns, so a kill -9 leaves either the whole line or nothing. Only a power loss
in the middle of a write can leave a torn tail; the next writer truncates it and records the
truncation (length and sha256 of the lost bytes) as the first event of the new chain segment.

Shared by the supervisor (worker lifecycle, thermal, watchdog) and the HTTP layer (one record per
request); callers never log prompt text, only its sha256 and length.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
_TAIL_CHUNK = 4096


class AuditError(Exception):
    """The audit log cannot be opened or written."""


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def record_hash(record: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of a record without its own `hash` field."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def _utc_now() -> str:
    return _dt.datetime.now(tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Tail:
    size: int
    seq: int
    hash: str


class AuditLog:
    """`AuditLog(path).append(event, **fields)`: thread- and process-safe chained appends."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._tail: _Tail | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot open audit log ({exc.strerror})") from exc

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one chained record durably and return it."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                tail = self._current_tail()
                record = {"seq": tail.seq + 1, "ts": _utc_now(), "event": event, "fields": fields,
                          "prev": tail.hash}
                record["hash"] = record_hash(record)
                self._write_line(_canonical(record) + b"\n")
                self._tail = _Tail(os.fstat(self._fd).st_size, record["seq"], record["hash"])
                return record
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _write_line(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        if written != len(data):  # disk full: never leave a partial record behind
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise AuditError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        os.fsync(self._fd)

    def _current_tail(self) -> _Tail:
        """Last seq/hash, re-read whenever another process appended since our last write."""
        size = os.fstat(self._fd).st_size
        if self._tail is not None and self._tail.size == size:
            return self._tail
        if size == 0:
            return _Tail(0, -1, GENESIS)
        data = _read_tail(self._fd, size)
        if not data.endswith(b"\n"):
            return self._truncate_torn_tail(data, size)
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            record = json.loads(last)
            return _Tail(size, int(record["seq"]), str(record["hash"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"{self.path}: last line is not an audit record ({exc}); "
                             f"run `orbox audit verify {self.path}`") from exc

    def _truncate_torn_tail(self, data: bytes, size: int) -> _Tail:
        cut = data.rfind(b"\n") + 1
        torn = data[cut:]
        keep = size - len(torn)
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)
        tail = self._current_tail() if keep else _Tail(0, -1, GENESIS)
        record = {"seq": tail.seq + 1, "ts": _utc_now(), "event": "audit.torn_tail_truncated",
                  "fields": {"bytes": len(torn), "sha256": hashlib.sha256(torn).hexdigest()}, "prev": tail.hash}
        record["hash"] = record_hash(record)
        self._write_line(_canonical(record) + b"\n")
        return _Tail(os.fstat(self._fd).st_size, record["seq"], record["hash"])


def _read_tail(fd: int, size: int) -> bytes:
    """Bytes from the start of the last complete line (or the torn remainder) to EOF."""
    start = size
    data = b""
    while start > 0:
        step = min(_TAIL_CHUNK, start)
        start -= step
        data = os.pread(fd, step, start) + data
        body = data[:-1] if data.endswith(b"\n") else data
        if b"\n" in body:
            break
    return data


def verify_log(path: str | os.PathLike) -> tuple[int, list[str]]:
    """Check the whole chain; return (number of records, problems naming the line)."""
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 0, 0
    try:
        handle = open(path, "rb")
    except OSError as exc:
        return 0, [f"{path}: cannot read ({exc.strerror})"]
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            if not raw.endswith(b"\n"):
                problems.append(f"{where}: torn last line ({len(raw)} bytes without a newline)")
                break
            try:
                record = json.loads(raw)
            except ValueError as exc:
                problems.append(f"{where}: not JSON ({exc})")
                break
            if not isinstance(record, dict) or not {"seq", "ts", "event", "fields", "prev", "hash"} <= record.keys():
                problems.append(f"{where}: expected keys seq, ts, event, fields, prev, hash")
                break
            if record["seq"] != expected_seq:
                problems.append(f"{where}: seq {record['seq']}, expected {expected_seq} (a record is missing or moved)")
            if record["prev"] != prev:
                problems.append(f"{where}: prev {record['prev'][:16]}… does not match the previous hash {prev[:16]}…")
            if record_hash(record) != record["hash"]:
                problems.append(f"{where}: hash does not match the record's content (edited)")
            prev, expected_seq, count = record["hash"], record["seq"] + 1, count + 1
    return count, problems
