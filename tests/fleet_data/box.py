"""A simulated box for the fleet tests: RAUC's slot status over GRUB's environment, and power cycles.

It models what the qemu test shows RAUC 1.8 and this image's grub.cfg doing (tests/test_image_ab_qemu.py):
an install marks the target bad, writes it, then makes it primary (ORDER first, OK=1, TRY=0); each boot
GRUB picks the first slot in ORDER with OK=1 and TRY below the limit and counts the try; mark-good sets
TRY=0, mark-bad OK=0; RAUC calls a slot good when OK=1 and TRY=0. `status()` returns the JSON shape
of `rauc status --output-format=json` parsed by the client's own parser.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.fleet.rauc import RaucError, RaucStatus, parse_status

SLOTS = {"rootfs.0": "A", "rootfs.1": "B"}


class PowerCut(BaseException):
    """Raised from inside `install` to stand for the power going out mid-write (nothing after it runs)."""


class SimulatedBox:
    def __init__(self, tries: int = 3) -> None:
        self.env = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}
        self.tries = tries
        self.booted = "A"
        self.boots = 1
        self.installed: list[str] = []  # sha256 of every bundle RAUC was given
        self.refuse: str | None = None  # RAUC's error for the next install
        self.cut_power_during_install = False

    def boot_id(self) -> str:
        return f"boot-{self.boots}"

    def power_cycle(self) -> str:
        """GRUB's choice, as grub.cfg makes it; returns the booted bootname."""
        for bootname in self.env["ORDER"].split():
            if self.env[f"{bootname}_OK"] == "1" and int(self.env[f"{bootname}_TRY"]) < self.tries:
                self.env[f"{bootname}_TRY"] = str(int(self.env[f"{bootname}_TRY"]) + 1)
                self.booted = bootname
                break
        else:
            self.booted = next(b for b in self.env["ORDER"].split() if self.env[f"{b}_OK"] == "1")
        self.boots += 1
        return self.booted

    def mark_good(self) -> None:
        self.env[f"{self.booted}_OK"], self.env[f"{self.booted}_TRY"] = "1", "0"

    def mark_bad(self) -> None:
        self.env[f"{self.booted}_OK"] = "0"

    # -- the client's RAUC seam -------------------------------------------------------------------

    def status(self) -> RaucStatus:
        slots = []
        for name, bootname in SLOTS.items():
            good = self.env[f"{bootname}_OK"] == "1" and self.env[f"{bootname}_TRY"] == "0"
            slots.append({name: {"class": "rootfs", "device": f"/dev/vda{2 + int(name[-1])}", "type": "ext4",
                                 "bootname": bootname, "state": "booted" if bootname == self.booted else "inactive",
                                 "parent": None, "mountpoint": None, "boot_status": "good" if good else "bad",
                                 "slot_status": {"bundle": {"compatible": None}}}})
        primary = next(name for name, b in SLOTS.items() if b == self.env["ORDER"].split()[0])
        return parse_status({"compatible": "orbox-dev", "variant": "", "booted": self.booted,
                             "boot_primary": primary, "slots": slots})

    def install(self, bundle: Path) -> None:
        if self.refuse:
            raise RaucError(f"rauc install exited 1: {self.refuse}")
        target = "B" if self.booted == "A" else "A"
        self.env[f"{target}_OK"] = "0"  # marked bad before the write
        if self.cut_power_during_install:
            raise PowerCut()
        self.installed.append(hashlib.sha256(bundle.read_bytes()).hexdigest())
        others = [b for b in self.env["ORDER"].split() if b != target]
        self.env.update({"ORDER": " ".join([target, *others]), f"{target}_OK": "1", f"{target}_TRY": "0"})
