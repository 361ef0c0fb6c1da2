"""The feeding rule, applied to every watchdog at once: /dev/watchdog, the serial MCU and systemd.

The supervisor calls `tick(healthy)` from its work loop. The watchdogs are armed (device opened,
MCU timeout set) only once the critical workers first settled, so a slow model load at boot cannot
reboot the box. From then on they are fed only while `healthy` is true: every critical worker
is ready, or deliberately/permanently not serving. A stalled or crash-looping worker therefore
lets the hardware reset the box, and a hung supervisor loop does too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.mcu_client import McuClient, McuError
from appliance.sdnotify import SystemdNotifier
from appliance.watchdog_dev import LinuxWatchdog, WatchdogError

log = logging.getLogger("orbox.watchdog")


class WatchdogFeeder:
    def __init__(self, *, device_path: str | None, timeout_s: int, mcu: McuClient | None,
                 notifier: SystemdNotifier, feed_interval_s: float, audit: Callable[..., None]):
        self.device_path = device_path
        self.timeout_s = timeout_s
        self.mcu = mcu
        self.notifier = notifier
        self.feed_interval_s = feed_interval_s
        self._audit = audit
        self.device: LinuxWatchdog | None = None
        self.armed = False
        self.feeding = False
        self.feeds = 0
        self.errors: dict[str, str] = {}
        self._next_feed = 0.0
        self._next_systemd = 0.0
        self._last_feed: float | None = None

    def tick(self, healthy: bool, why_not: str = "") -> None:
        now = time.monotonic()
        if not healthy:
            if self.feeding:
                self.feeding = False
                log.error("watchdog: feeding stopped (%s)", why_not)
                self._audit("watchdog.feeding_stopped", reason=why_not)
            return
        if not self.armed:
            self._arm()
        if not self.feeding:
            self.feeding = True
            self._audit("watchdog.feeding", device=self.device_path, mcu=self.mcu.port if self.mcu else None,
                        systemd=self.notifier.enabled)
            self._next_feed = now
        if now >= self._next_feed:
            self._feed_hardware()
            self._next_feed = now + self.feed_interval_s
        interval = self.notifier.watchdog_interval_s
        if interval and now >= self._next_systemd:
            self.notifier.notify("WATCHDOG=1")
            self._next_systemd = now + interval

    def _arm(self) -> None:
        self.armed = True
        if self.device_path:
            try:
                self.device = LinuxWatchdog(self.device_path, self.timeout_s)
                self._audit("watchdog.armed", device=self.device_path, timeout=self.device.timeout_note)
            except WatchdogError as exc:
                self._error("device", str(exc))
        if self.mcu is not None:
            try:
                self.mcu.set_timeout(self.timeout_s)
                self._audit("watchdog.armed", mcu=self.mcu.port, timeout_s=self.timeout_s)
            except McuError as exc:
                self._error("mcu", str(exc))

    def _feed_hardware(self) -> None:
        fed = False
        if self.device is not None:
            try:
                self.device.feed()
                fed = True
            except WatchdogError as exc:
                self._error("device", str(exc))
        if self.mcu is not None:
            try:
                self.mcu.feed()
                fed = True
            except McuError as exc:
                self._error("mcu", str(exc))
        if fed:
            self.feeds += 1
            self._last_feed = time.monotonic()

    def _error(self, which: str, message: str) -> None:
        if self.errors.get(which) != message:
            log.error("watchdog %s: %s", which, message)
            self._audit("watchdog.error", watchdog=which, error=message)
        self.errors[which] = message

    def close(self, clean: bool) -> None:
        """Clean exit: magic close, so the board does not reboot because we stopped on purpose."""
        if self.device is not None:
            self.device.close(magic=clean)
            self._audit("watchdog.closed", device=self.device_path, magic_close=clean)
            self.device = None

    def status(self) -> dict[str, Any]:
        return {
            "armed": self.armed, "feeding": self.feeding, "feeds": self.feeds,
            "last_feed_age_s": round(time.monotonic() - self._last_feed, 3) if self._last_feed else None,
            "device": self.device_path, "device_timeout": self.device.timeout_note if self.device else None,
            "mcu": self.mcu.port if self.mcu else None, "systemd": self.notifier.enabled,
            "systemd_watchdog_interval_s": self.notifier.watchdog_interval_s, "errors": dict(self.errors),
        }
