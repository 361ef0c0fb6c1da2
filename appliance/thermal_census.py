"""Which thermal sensors the box has when it starts, against what its profile requires.

A sensor the machine never had is a configuration fact, settled once at start, not an emergency: a
profile whose `thermal.required_sensors` match no readable zone refuses to start (`orbox serve
--allow-missing-sensors` overrides that for bench work), and a box with no sensor at all, where
that is allowed, runs unmanaged and says so. A zone readable at start that fails later is a fault:
ThermalSensors then reports it unreadable and the governor treats it as hot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.thermal import ThermalSensors
from hw_profiles import ThermalSpec

ALLOW_FLAG = "--allow-missing-sensors"


class MissingSensorError(Exception):
    """A sensor the profile requires is missing at start; the message names it and the profile key."""


@dataclass(frozen=True)
class ThermalCensus:
    zones: frozenset[str]  # zone directories readable at start: a later failure counts as hot
    missing: tuple[str, ...]  # required sensors found missing, allowed by ALLOW_FLAG

    def unmanaged(self, profile: str, sensors: ThermalSensors) -> str | None:
        """Why the box has nothing to govern (None when a first reading of every sensor finds one)."""
        reading = sensors.read()
        if reading.temps or reading.unreadable:
            return None
        if self.missing:
            return f"required sensor(s) {list(self.missing)} missing, allowed by {ALLOW_FLAG}"
        return f"profile {profile} requires no sensor"


def take_census(spec: ThermalSpec, sysfs_root: Path, allow_missing: bool) -> ThermalCensus:
    """The zones readable now; MissingSensorError if a required one is missing and that is not allowed."""
    def readable(patterns: list[str]) -> frozenset[str]:
        reading = ThermalSensors(sysfs_root, patterns, None, use_psutil=False).read()
        return frozenset(name.removeprefix("sysfs:") for name in reading.temps)

    missing = tuple(pattern for pattern in spec.required_sensors if not readable([pattern]))
    if missing and not allow_missing:
        raise MissingSensorError("\n".join(
            f"thermal.required_sensors: sensor {pattern!r} is required, but no readable thermal zone under "
            f"{sysfs_root} matches it; run on the hardware the profile describes, use a profile that requires "
            f"no sensor (such as dev), or pass {ALLOW_FLAG} for bench work" for pattern in missing))
    return ThermalCensus(readable(list(spec.sources)), missing)
