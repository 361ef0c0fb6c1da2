"""The device attributes the box sends to hawkBit (configData): what a fleet operator needs to pick a
rollout, and nothing else.

An allow-list, built here and nowhere else: the profile, the image version, RAUC's compatible and
booted slot, and hardware facts. No hostname (an OR name can say where a patient is), no network
address, no serial of a patient-facing device, no document, prompt or audit content.
"""

from __future__ import annotations

from pathlib import Path

from appliance.fleet.rauc import RaucStatus
from hw_profiles import detect_machine
from primitives.distribution import VERSION

MAX_VALUE = 128  # hawkBit stores controller attribute keys and values of up to 128 characters


def device_attributes(profile: str, image_version: str, status: RaucStatus, *, proc_root: Path = Path("/proc"),
                      sys_root: Path = Path("/sys")) -> dict[str, str]:
    machine = detect_machine(proc_root=proc_root, sys_root=sys_root, probe_runtimes=False)
    values = {
        "orbox.profile": profile,
        "orbox.image_version": image_version,
        "orbox.software": VERSION,
        "rauc.compatible": status.compatible,
        "rauc.booted_slot": status.booted,
        "hw.arch": machine.arch,
        "hw.cpu_model": machine.cpu_model,
        "hw.cpu_cores": str(machine.logical_cores),
        "hw.memory_mb": str(machine.memory_total_mb),
    }
    return {key: value[:MAX_VALUE] for key, value in values.items()}
