"""The hardware watchdog while a slot boots: a hung new slot must reset, so that GRUB counts the boot
as a try and falls back after `boot_tries` of them.

From early boot until mark-good confirms the slot, the init feeds the box's first hardware watchdog
(/dev/watchdog0): systemd through RuntimeWatchdogSec (this drop-in), bases without systemd through
busybox's `watchdog` daemon (defaults/boot-watchdog, which reads its timeout from the same drop-in).
A kernel or init that hangs stops the feeding, and the watchdog resets the box. After mark-good the
init lets go of the device (defaults/mark-good) so that `orbox serve` can open it and feed it only
while its workers are healthy; a Linux watchdog device has one owner at a time.
"""

from __future__ import annotations

SYSTEMD_DROPIN_PATH = "/usr/lib/systemd/system.conf.d/orbox-watchdog.conf"
BOOT_WATCHDOG = "/usr/libexec/orbox/boot-watchdog"


def systemd_dropin(timeout_s: int) -> str:
    """PID 1 feeds /dev/watchdog0 (systemd's default device) with the profile's watchdog timeout."""
    return f"# orbox: the boot watchdog (image_build/watchdog.py); released at mark-good.\n" \
           f"[Manager]\nRuntimeWatchdogSec={timeout_s}s\n"
