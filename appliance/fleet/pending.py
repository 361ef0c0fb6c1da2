"""The install in flight, kept on disk across the reboot, and the verdict reached after it.

rauc-hawkbit-updater reports success as soon as `rauc install` returns (its issue #161), before the
new slot has ever booted. Here the action stays open: before `rauc install` the client writes what
it is about to do (atomically: temp file, fsync, rename), and only in a later boot does it decide,
from RAUC's slot status, what to tell hawkBit:

- booted the installed slot and RAUC says it is good (orbox-mark-good ran after the self-check):
  success;
- booted the slot it was installed from: failure, with what RAUC says of the other slot (marked bad
  by mark-good, or never finished because power was lost during the write);
- booted the installed slot but not yet marked good: no verdict yet.

Nothing is decided in the boot that installed: the new slot has not run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from appliance.fleet.rauc import RaucStatus
from primitives.atomic import atomic_write_text

Phase = Literal["installing", "installed"]


@dataclass(frozen=True)
class PendingAction:
    action_id: str
    version: str  # the hawkBit chunk's version, for messages
    sha256: str  # of the bundle RAUC was given
    boot_id: str  # the boot in which it was installed (/proc/sys/kernel/random/boot_id)
    from_slot: str  # bootname that was running, e.g. "A"
    target_slot: str  # bootname RAUC writes, e.g. "B"
    target_name: str  # RAUC's slot name, e.g. "rootfs.1"
    phase: Phase  # "installing" until `rauc install` returned 0


@dataclass(frozen=True)
class Verdict:
    success: bool
    details: list[str]


class PendingStore:
    """One JSON file; absent means no install in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> PendingAction | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PendingError(f"{self.path}: unreadable pending-action record ({exc}); "
                               f"delete it to let the fleet client start over") from None
        try:
            return PendingAction(**data)
        except TypeError as exc:
            raise PendingError(f"{self.path}: expected the fields of a pending action ({exc}); "
                               f"delete it to let the fleet client start over") from None

    def save(self, action: PendingAction) -> None:
        atomic_write_text(self.path, json.dumps(asdict(action), indent=1, sort_keys=True) + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class PendingError(Exception):
    """The pending-action file exists but cannot be read."""


def decide(action: PendingAction, status: RaucStatus, boot_id: str) -> Verdict | None:
    """Success, failure with a reason, or None while the answer is not known yet (see module doc)."""
    if boot_id == action.boot_id:
        return None
    target = status.by_bootname(action.target_slot)
    target_state = (target.boot_status or "unknown") if target else "missing"
    where = f"slot {action.target_slot} ({action.target_name})"
    if status.booted == action.target_slot:
        if target is not None and target.boot_status == "good":
            return Verdict(True, [f"version {action.version} booted from {where} and was marked good after "
                                  f"the self-check"])
        return None
    if action.phase == "installing":
        reason = (f"the box restarted before `rauc install` finished writing {where}; it still boots "
                  f"slot {status.booted} ({where} is {target_state})")
    else:
        reason = (f"{where} was installed but the box booted slot {status.booted} again: RAUC says {where} is "
                  f"{target_state} (its self-check failed, or it did not come up and the bootloader fell back)")
    return Verdict(False, [f"version {action.version}: {reason}"])
