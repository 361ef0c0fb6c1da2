"""A/B slots on a simulated target: slot-a.img and slot-b.img stand for the partitions and
bootstate.json for the bootloader's environment (RAUC/barebox-style boot counting).

Install, in the order RAUC uses: every check before the first byte is written (envelope,
signature, schema, profile, version policy, slot capacity), then the target slot is marked bad,
written and hash-checked, and only then made primary with a boot budget. Each state change is
one atomic rename of bootstate.json, so a crash at any point leaves the old layout (the target
slot is marked bad, the bootloader ignores it) or the new one.

Boot counting: a pending slot boots at most `max_attempts` times; if `mark-good` never confirms
it, the bootloader marks it bad and falls back to the other slot.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from packaging.version import Version

from image_build.errors import ImageError
from image_build.spec import pep440, profile_arch
from image_build.update_bundle import UpdateBundleRejected, open_update_bundle
from primitives.artifacts import FileDigest, file_digest
from primitives.atomic import atomic_write_bytes
from primitives.signing import canonical_json

STATE_SCHEMA = "orbox.bootstate/1"
STATE_NAME = "bootstate.json"
SLOTS = ("a", "b")
SLOT_STATES = {"good", "pending", "bad", "empty"}


def slot_path(target: Path, slot: str) -> Path:
    return target / f"slot-{slot}.img"


def other_slot(slot: str) -> str:
    return "b" if slot == "a" else "a"


def init_target(
    target: Path, *, profile: str, version: str, image: Path, slot_size: int, max_attempts: int = 3
) -> dict[str, Any]:
    """Factory state: slot A holds `image` and is good and primary, slot B is empty."""
    if (target / STATE_NAME).exists():
        raise ImageError(f"{target / STATE_NAME}: already exists; refusing to re-initialise a slot layout")
    try:
        pep440(version)
    except ValueError as exc:
        raise ImageError(f"version: {exc}") from exc
    profile_arch(profile)  # an unknown profile would refuse every update later
    try:
        digest = file_digest(image)
    except OSError as exc:
        raise ImageError(f"{image}: cannot read the slot image ({exc.strerror})") from exc
    if digest.size > slot_size:
        raise ImageError(f"{image}: {digest.size} bytes does not fit a {slot_size}-byte slot")
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(slot_path(target, "a"), image.read_bytes())
    atomic_write_bytes(slot_path(target, "b"), b"")
    state = factory_state(profile, version, digest, slot_size, max_attempts, booted="a")
    save_state(target, state)
    return state


def factory_state(
    profile: str, version: str, digest: FileDigest, slot_size: int, max_attempts: int, booted: str | None
) -> dict[str, Any]:
    """Bootloader state of a freshly flashed box: slot A good and primary, slot B empty."""
    return {
        "schema": STATE_SCHEMA,
        "profile": profile,
        "slot_size": slot_size,
        "max_attempts": max_attempts,
        "primary": "a",
        "booted": booted,
        "slots": {"a": {"state": "good", "version": version, **digest.as_dict()}, "b": {"state": "empty"}},
    }


def load_state(target: Path) -> dict[str, Any]:
    path = target / STATE_NAME
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ImageError(
            f"{path}: no bootloader state; expected a slot layout made by `orbox image init-target`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: unreadable bootloader state ({exc})") from exc
    problems = _state_problems(state)
    if problems:
        raise ImageError(f"{path}: {problems}")
    return state


def _state_problems(state: Any) -> str:
    """What is wrong with a bootstate document ("" if nothing); install and boot index it unchecked."""
    if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
        return f"field 'schema' must be {STATE_SCHEMA!r}"
    if not isinstance(state.get("profile"), str):
        return f"field 'profile' must be a profile name, found {state.get('profile')!r}"
    for field in ("slot_size", "max_attempts"):
        if type(state.get(field)) is not int or state[field] < 1:
            return f"field {field!r} must be a positive integer, found {state.get(field)!r}"
    for field, allowed in (("primary", SLOTS), ("booted", (*SLOTS, None))):
        if state.get(field) not in allowed:
            return f"field {field!r} must be one of {list(allowed)}, found {state.get(field)!r}"
    slots = state.get("slots")
    if not isinstance(slots, dict) or set(slots) != set(SLOTS):
        return f"field 'slots' must hold exactly {list(SLOTS)}"
    for name in SLOTS:
        slot = slots[name]
        if not isinstance(slot, dict) or slot.get("state") not in SLOT_STATES:
            return f"slots.{name} must be an object with a state in {sorted(SLOT_STATES)}, found {slot!r}"
        if slot["state"] in ("good", "pending"):
            try:
                pep440(slot.get("version"))
            except (TypeError, ValueError):
                return f"slots.{name}.version must be a PEP 440 version, found {slot.get('version')!r}"
        if slot["state"] == "pending" and type(slot.get("attempts_left")) is not int:
            return f"slots.{name}.attempts_left must be an integer, found {slot.get('attempts_left')!r}"
    return ""


def save_state(target: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(target / STATE_NAME, canonical_json(state))


@dataclass(frozen=True)
class InstallResult:
    slot: str
    version: str
    previous_version: str


def install(
    bundle_path: Path,
    target: Path,
    pubkey: Ed25519PublicKey,
    *,
    force: bool = False,
    chunk_size: int = 1 << 20,
    progress: Callable[[int], None] | None = None,
) -> InstallResult:
    """Check everything, then mark the inactive slot bad, write it, and make it primary (pending)."""
    state = load_state(target)
    running = state["booted"] or state["primary"]
    running_slot = state["slots"][running]
    if running_slot["state"] != "good":
        raise ImageError(
            f"running slot {running!r} is {running_slot['state']!r}, not confirmed; "
            "run `orbox image mark-good` first so a fallback slot survives the update"
        )
    target_slot = other_slot(running)
    with open_update_bundle(bundle_path, pubkey) as bundle:
        manifest = bundle.manifest
        _check_policy(bundle_path, manifest, state, running_slot["version"], force)
        image_entry = bundle.file_entry("slot-image")
        if image_entry["size"] > state["slot_size"]:
            raise UpdateBundleRejected(
                f"{bundle_path}: slot image is {image_entry['size']} bytes, the slot holds "
                f"{state['slot_size']}"
            )

        state = copy.deepcopy(state)
        state["slots"][target_slot] = {"state": "bad"}
        state["primary"] = running
        save_state(target, state)

        _write_slot(slot_path(target, target_slot), bundle.read_file(image_entry, chunk_size), progress)
        written = file_digest(slot_path(target, target_slot))
        if (written.sha256, written.size) != (image_entry["sha256"], image_entry["size"]):
            raise ImageError(
                f"{slot_path(target, target_slot)}: read back sha256 {written.sha256}, "
                f"expected {image_entry['sha256']}; slot {target_slot!r} stays bad"
            )
        for entry in manifest["files"]:
            if entry is not image_entry:
                for _ in bundle.read_file(entry, chunk_size):
                    pass

    state["slots"][target_slot] = {
        "state": "pending",
        "version": manifest["version"],
        "attempts_left": state["max_attempts"],
        **written.as_dict(),
    }
    state["primary"] = target_slot
    save_state(target, state)
    return InstallResult(target_slot, manifest["version"], running_slot["version"])


def _check_policy(
    bundle_path: Path, manifest: dict[str, Any], state: dict[str, Any], current: str, force: bool
) -> None:
    if manifest["profile"] != state["profile"]:
        raise UpdateBundleRejected(
            f"{bundle_path}: bundle is for profile {manifest['profile']!r}, this box is {state['profile']!r}"
        )
    if Version(current) < Version(manifest["min_version"]):
        raise UpdateBundleRejected(
            f"{bundle_path}: needs at least version {manifest['min_version']} installed, "
            f"the box runs {current}"
        )
    if Version(manifest["version"]) <= Version(current) and not force:
        raise UpdateBundleRejected(
            f"{bundle_path}: version {manifest['version']} is not newer than the running "
            f"{current}; refusing a downgrade or reinstall without --force"
        )


def _write_slot(path: Path, chunks: Any, progress: Callable[[int], None] | None) -> None:
    """Write into the slot in place (a partition cannot be renamed); fsync before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        written = 0
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                count = os.write(fd, view)
                view = view[count:]
            written += len(chunk)
            if progress is not None:
                progress(len(chunk))
        os.ftruncate(fd, written)
        os.fsync(fd)
    finally:
        os.close(fd)


def choose_boot_slot(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The bootloader's decision and the state it leaves behind (pure; `boot` persists it)."""
    state = copy.deepcopy(state)
    primary = state["primary"]
    slot = state["slots"][primary]
    if slot["state"] == "pending" and slot.get("attempts_left", 0) > 0:
        slot["attempts_left"] -= 1
        chosen = primary
    elif slot["state"] == "good":
        chosen = primary
    else:
        if slot["state"] == "pending":
            state["slots"][primary] = {**slot, "state": "bad"}
        fallback = other_slot(primary)
        if state["slots"][fallback]["state"] != "good":
            raise ImageError(
                f"no bootable slot: primary {primary!r} is {slot['state']!r} and "
                f"{fallback!r} is {state['slots'][fallback]['state']!r}"
            )
        state["primary"] = chosen = fallback
    state["booted"] = chosen
    return chosen, state


def boot(target: Path) -> str:
    """Simulate one power-on of the box: pick a slot, spend one boot attempt, record what booted."""
    chosen, state = choose_boot_slot(load_state(target))
    save_state(target, state)
    return chosen


def mark_good(target: Path) -> tuple[str, bool]:
    """Confirm the booted slot (called once the box is healthy); returns (slot, changed)."""
    state = load_state(target)
    booted = state["booted"]
    if booted is None:
        raise ImageError(f"{target / STATE_NAME}: no slot has booted yet; nothing to confirm")
    slot = state["slots"][booted]
    if slot["state"] == "good":
        return booted, False
    if slot["state"] != "pending":
        raise ImageError(
            f"booted slot {booted!r} is {slot['state']!r}; only a pending slot can be marked good"
        )
    state["slots"][booted] = {key: value for key, value in slot.items() if key != "attempts_left"} | {
        "state": "good"
    }
    save_state(target, state)
    return booted, True
