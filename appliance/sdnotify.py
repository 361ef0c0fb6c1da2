"""systemd notification (sd_notify) without libsystemd: one datagram per message to NOTIFY_SOCKET.

`READY=1` once every worker settled, `WATCHDOG=1` from the supervisor's work loop at half of
WATCHDOG_USEC (only while every critical worker makes progress), `STATUS=` the readiness verdict
for humans, `STOPPING=1` on shutdown. Without NOTIFY_SOCKET (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval(env)
        self.sent = 0
        self._socket: socket.socket | None = None
        if self.address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send e.g. notify("READY=1", "STATUS=serving"); False when systemd is absent or unreachable."""
        if self._socket is None or self.address is None:
            return False
        try:
            self._socket.sendto("\n".join(assignments).encode("utf-8"), self.address)
        except OSError:
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):  # abstract namespace
        return b"\0" + value[1:].encode()
    return value


def _watchdog_interval(env) -> float | None:
    """Half of WATCHDOG_USEC, if it is meant for this process (WATCHDOG_PID unset or ours)."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
