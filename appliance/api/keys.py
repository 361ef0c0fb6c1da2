"""API keys, one per bedside device, stored hashed: only sha256(key) is ever written to disk.

The keys file is JSON::

    {"version": 1, "keys": [{"name": "tablet-or3", "sha256": "...", "priority": "normal", "created": "...Z"}]}

A key is 32 random bytes (urlsafe base64) behind the prefix `orbox-`, so a plain sha256 is a
sufficient at-rest hash (no dictionary to attack). The running server re-reads the file whenever
it changes, so `orbox api-keys revoke` takes effect without a restart. Writes are atomic and
serialised by a lock file, so two concurrent `add`s never lose a key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from primitives.atomic import atomic_write_text

KEY_PREFIX = "orbox-"
PRIORITIES = {"high": 0, "normal": 1, "low": 2}  # lower is served first
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class KeysError(Exception):
    """The keys file is unreadable or malformed, or a key operation is impossible."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    priority: str
    created: str

    @property
    def rank(self) -> int:
        return PRIORITIES[self.priority]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _parse(path: Path, text: str) -> dict[str, ApiKey]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeysError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysError(f"{path}: expected an object with a 'keys' list, found {type(data).__name__}")
    keys: dict[str, ApiKey] = {}
    for index, item in enumerate(data["keys"]):
        where = f"{path}: keys[{index}]"
        if not isinstance(item, dict):
            raise KeysError(f"{where}: expected an object, found {type(item).__name__}")
        name, digest, priority = item.get("name"), item.get("sha256"), item.get("priority", "normal")
        if not isinstance(name, str) or not _NAME.match(name):
            raise KeysError(f"{where}.name: expected 1-64 of [A-Za-z0-9._-], found {name!r}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise KeysError(f"{where}.sha256: expected 64 lower-case hex digits, found {digest!r}")
        if priority not in PRIORITIES:
            raise KeysError(f"{where}.priority: expected one of {sorted(PRIORITIES)}, found {priority!r}")
        if name in keys:
            raise KeysError(f"{where}.name: duplicate name {name!r}")
        keys[name] = ApiKey(name, digest, priority, str(item.get("created", "")))
    return keys


class KeyStore:
    """Read, add and revoke keys in one file; `authenticate(key)` for the server."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}

    def load(self) -> dict[str, ApiKey]:
        """All keys by name; a missing file means no keys."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysError(f"{self.path}: cannot read keys file ({exc})") from exc
        return _parse(self.path, text)

    def authenticate(self, key: str) -> ApiKey | None:
        """The key's record, or None; picks up changes to the file since the last call."""
        self._refresh()
        return self._by_hash.get(hash_key(key))

    def add(self, name: str, priority: str = "normal") -> str:
        """Create a key for device `name`; returns the key itself (the only time it exists in clear)."""
        if not _NAME.match(name):
            raise KeysError(f"device name: expected 1-64 of [A-Za-z0-9._-] starting with a letter or digit, "
                            f"found {name!r}")
        if priority not in PRIORITIES:
            raise KeysError(f"priority: expected one of {sorted(PRIORITIES)}, found {priority!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._exclusive():
            keys = self.load()
            if name in keys:
                raise KeysError(f"{self.path}: a key named {name!r} exists; revoke it first")
            created = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            keys[name] = ApiKey(name, hash_key(key), priority, created)
            self._write(keys)
        return key

    def revoke(self, name: str) -> None:
        with self._exclusive():
            keys = self.load()
            if name not in keys:
                known = ", ".join(sorted(keys)) or "none"
                raise KeysError(f"{self.path}: no key named {name!r} (known: {known})")
            del keys[name]
            self._write(keys)

    # ------------------------------------------------------------------ internals

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                keys = self.load()
            except KeysError:
                if self._stamp is None:
                    raise
                return  # a broken edit must not lock every device out: keep serving the last good set
            self._by_hash = {record.sha256: record for record in keys.values()}
            self._stamp = stamp

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "w")
        except OSError as exc:
            raise KeysError(f"{lock_path}: cannot create lock file ({exc.strerror})") from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _write(self, keys: dict[str, ApiKey]) -> None:
        data: dict[str, Any] = {"version": 1, "keys": [asdict(keys[name]) for name in sorted(keys)]}
        try:
            atomic_write_text(self.path, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise KeysError(f"{self.path}: cannot write keys file ({exc.strerror})") from exc
