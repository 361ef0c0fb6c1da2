"""The RAUC boundary: `rauc install` and `rauc status --output-format=json`, as the box's mark-good does.

The client never writes a slot or the bootloader itself: RAUC checks the bundle (signature, keyring,
compatible, the pre-install handler's version policy) and picks the target. Tests inject another
`Rauc` (the RAUC leg itself is proven in qemu by tests/test_image_ab_qemu.py).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class RaucError(Exception):
    """RAUC refused or failed; the message carries RAUC's own last lines."""


@dataclass(frozen=True)
class Slot:
    name: str  # "rootfs.1"
    slot_class: str  # "rootfs"
    bootname: str | None  # "B"
    state: str  # "booted", "active" or "inactive"
    boot_status: str | None  # "good", "bad", or None when the bootloader does not say


@dataclass(frozen=True)
class RaucStatus:
    compatible: str
    booted: str  # the booted slot's bootname
    boot_primary: str | None  # the slot the bootloader tries first
    slots: dict[str, Slot]

    def by_bootname(self, bootname: str) -> Slot | None:
        return next((slot for slot in self.slots.values() if slot.bootname == bootname), None)

    def other_slot(self) -> Slot:
        """The slot of the booted slot's class that RAUC will write: the one not running."""
        booted = self.by_bootname(self.booted)
        if booted is None:
            raise RaucError(f"rauc status: booted slot {self.booted!r} is not one of {sorted(self.slots)}")
        others = [slot for slot in self.slots.values() if slot.slot_class == booted.slot_class and slot is not booted
                  and slot.bootname]
        if len(others) != 1:
            raise RaucError(f"rauc status: expected one other {booted.slot_class} slot, found "
                            f"{[slot.name for slot in others]}")
        return others[0]


def parse_status(data: Any) -> RaucStatus:
    """`rauc status --output-format=json` of RAUC 1.8: slots is a list of one-key objects."""
    try:
        slots = {}
        for entry in data["slots"]:
            (name, slot), = entry.items()
            slots[name] = Slot(name, slot["class"], slot.get("bootname"), slot["state"],
                               slot.get("boot_status") or None)
        return RaucStatus(data["compatible"], data["booted"], data.get("boot_primary"), slots)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RaucError(f"rauc status: unexpected JSON ({type(exc).__name__}: {exc})") from None


class Rauc(Protocol):
    def status(self) -> RaucStatus: ...

    def install(self, bundle: Path) -> None: ...


class RaucCli:
    """The `rauc` command line, which talks to `rauc service` over D-Bus."""

    def __init__(self, executable: str = "rauc", timeout_s: float = 3600.0) -> None:
        self.executable = executable
        self.timeout_s = timeout_s

    def status(self) -> RaucStatus:
        out = self._run(["status", "--output-format=json", "--detailed"])
        try:
            return parse_status(json.loads(out))
        except ValueError as exc:
            raise RaucError(f"rauc status: output is not JSON ({exc})") from None

    def install(self, bundle: Path) -> None:
        self._run(["install", str(bundle)])

    def _run(self, args: list[str]) -> str:
        try:
            done = subprocess.run([self.executable, *args], capture_output=True, text=True, timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RaucError(f"rauc {args[0]}: {exc}") from None
        if done.returncode != 0:  # the CLI prints RAUC's reason as "LastError: ..." on stdout, the verdict on stderr
            reasons = [line for line in done.stdout.splitlines() if line.startswith("LastError:")]
            tail = " | ".join([*done.stderr.strip().splitlines()[-2:], *reasons])
            raise RaucError(f"rauc {args[0]} exited {done.returncode}: {tail}")
        return done.stdout
