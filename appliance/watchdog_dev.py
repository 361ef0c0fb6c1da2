"""The Linux watchdog device (/dev/watchdogN): timeout by ioctl, feed by write, magic close.

Any write feeds it. Writing 'V' right before close disarms it (the "magic close"); without it
the board reboots when the supervisor exits, which is what we want after a crash and not after
a clean shutdown. Devices built with `nowayout` reboot regardless.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

# <linux/watchdog.h>: _IOWR('W', 6, int), _IOR('W', 7, int)
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707


class WatchdogError(Exception):
    """The watchdog device cannot be opened or written."""


class LinuxWatchdog:
    def __init__(self, path: str, timeout_s: int):
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise WatchdogError(f"watchdog device {path}: cannot open ({exc.strerror})") from exc
        self.timeout_s, self.timeout_note = self._set_timeout(timeout_s)
        self.feeds = 0

    def _set_timeout(self, wanted: int) -> tuple[int | None, str]:
        """Ask the driver for `wanted` seconds; drivers may round, and FIFOs/odd drivers refuse."""
        try:
            fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, struct.pack("i", wanted))
            (actual,) = struct.unpack("i", fcntl.ioctl(self._fd, WDIOC_GETTIMEOUT, struct.pack("i", 0)))
            return actual, f"timeout set to {actual}s (asked {wanted}s)"
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                return None, f"device does not support WDIOC_SETTIMEOUT ({exc.strerror}); driver default applies"
            raise WatchdogError(f"watchdog device {self.path}: timeout ioctl failed ({exc.strerror})") from exc

    def feed(self) -> None:
        try:
            os.write(self._fd, b"\0")
        except OSError as exc:
            raise WatchdogError(f"watchdog device {self.path}: feed failed ({exc.strerror})") from exc
        self.feeds += 1

    def close(self, magic: bool = True) -> None:
        """Disarm with the magic 'V' (clean exit) or just close (the board will reset)."""
        if self._fd < 0:
            return
        try:
            if magic:
                os.write(self._fd, b"V")
        finally:
            os.close(self._fd)
            self._fd = -1
