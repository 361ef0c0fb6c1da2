"""Thermal governor: sensors -> bands with hysteresis -> load shedding, video last.

Sensors are the profile's thermal zones under a sysfs root (millidegrees C in `temp`), the serial
MCU's sensors, and psutil's hwmon readings when it has any. The governor works on the hottest
reading. Which zones the box has is settled at start (appliance.thermal_census): a box with no
sensor at all, where its profile allows that, runs unmanaged. A zone that was readable at start, or
an MCU sensor, that cannot be read counts as *hot*: the effective temperature is
then at least the entry of the most severe band, so the LLM is shed; an unreadable sensor never
shuts the box down (only a real reading at or above `critical_c` does), because stopping the
surgical video over a broken sensor cable would be worse than the heat.

Bands come from the profile, sorted by `enter_c`. A band is entered at `enter_c` and left below its
`exit_c` (hysteresis). Actions are cumulative: the actions of every band up to the current one
stay applied. They are applied from least to most severe when heating up and undone in reverse when
cooling down: fan_up < llm_reduce_threads < llm_pause_admission < llm_stop < shutdown. Nothing here
ever touches the video worker except the final controlled shutdown.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.mcu_client import McuClient, McuError

SEVERITY = ("fan_up", "llm_reduce_threads", "llm_pause_admission", "llm_stop", "shutdown")
log = logging.getLogger("orbox.thermal")


@dataclass
class Reading:
    temps: dict[str, float] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # sensor -> why

    @property
    def hottest(self) -> float | None:
        return max(self.temps.values()) if self.temps else None


class ThermalSensors:
    """`expected` are the zones readable at start: one that fails or vanishes later is a fault (hot); other
    zones are read when they can be and otherwise ignored, since the box never depended on them."""

    def __init__(self, sysfs_root: Path, zone_globs: list[str], mcu: McuClient | None, use_psutil: bool,
                 mcu_error: str | None = None, expected: Collection[str] = ()):
        self.sysfs_root = sysfs_root
        self.zone_globs = zone_globs
        self.expected = frozenset(expected)
        self.mcu = mcu
        self.mcu_error = mcu_error  # the MCU is configured but its port could not be opened
        self.use_psutil = use_psutil

    def read(self) -> Reading:
        reading = Reading()
        self._read_sysfs(reading)
        if self.mcu is not None:
            self._read_mcu(reading)
        elif self.mcu_error:
            reading.unreadable["mcu"] = self.mcu_error
        if self.use_psutil:
            self._read_psutil(reading)
        return reading

    def _read_sysfs(self, reading: Reading) -> None:
        zones = sorted({path for pattern in self.zone_globs for path in self.sysfs_root.glob(pattern)})
        for zone in zones:
            try:
                reading.temps[f"sysfs:{zone.name}"] = int((zone / "temp").read_text().strip()) / 1000.0
            except (OSError, ValueError) as exc:
                if zone.name in self.expected:
                    reading.unreadable[f"sysfs:{zone.name}"] = f"{zone / 'temp'}: {exc}"
        for name in sorted(self.expected - {zone.name for zone in zones}):
            reading.unreadable[f"sysfs:{name}"] = f"{self.sysfs_root / name}: gone (it was readable at start)"

    def _read_mcu(self, reading: Reading) -> None:
        try:
            values = self.mcu.read_temps()
        except McuError as exc:
            reading.unreadable["mcu"] = str(exc)
            return
        for index, value in enumerate(values):
            if value is None:
                reading.unreadable[f"mcu:{index}"] = "the MCU reports a sensor fault"
            else:
                reading.temps[f"mcu:{index}"] = value

    @staticmethod
    def _read_psutil(reading: Reading) -> None:
        try:
            import psutil

            chips = psutil.sensors_temperatures()
        except (ImportError, AttributeError, OSError):
            return
        for chip, entries in chips.items():
            for index, entry in enumerate(entries):
                if entry.current is not None:
                    reading.temps[f"psutil:{chip}/{entry.label or index}"] = float(entry.current)


class Actuator(Protocol):
    """What the governor can do; the supervisor implements it."""

    def apply_thermal_action(self, action: str, active: bool, reason: str) -> None: ...


@dataclass
class Transition:
    at: float
    from_band: str | None
    to_band: str | None
    temperature_c: float
    reason: str
    actions_on: list[str]
    actions_off: list[str]


class ThermalGovernor:
    def __init__(self, thermal_spec: Any, sensors: ThermalSensors, actuator: Actuator,
                 on_transition: Callable[[Transition], None], poll_s: float, unmanaged: str | None = None):
        self.unmanaged = unmanaged  # why the box has no sensor to act on; the governor then never polls
        self.bands = sorted(thermal_spec.bands, key=lambda band: band.enter_c)
        self.critical_c = float(thermal_spec.critical_c)
        self.sensors = sensors
        self.actuator = actuator
        self.on_transition = on_transition
        self.poll_s = poll_s
        self.level = -1  # index into bands; -1 = below every band
        self.critical = False
        self.active: set[str] = set()
        self.last_reading = Reading()
        self.effective_c: float | None = None
        self.transitions: collections.deque[Transition] = collections.deque(maxlen=50)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def band(self) -> str | None:
        return "critical_shutdown" if self.critical else (self.bands[self.level].name if self.level >= 0 else None)

    @property
    def admission_paused(self) -> bool:
        return bool(self.active & {"llm_pause_admission", "llm_stop", "shutdown"})

    def evaluate(self, reading: Reading) -> Transition | None:
        """Fold one reading into the band state; apply and return the transition, if any."""
        with self._lock:
            hottest = reading.hottest
            effective = hottest
            reason = f"hottest sensor {hottest:.1f} C" if hottest is not None else "no readable sensor"
            if hottest is None and not reading.unreadable:  # every sensor the box had at start went silent
                reading.unreadable["sensors"] = "no sensor gave a reading"
            if reading.unreadable:
                assumed = self.bands[-1].enter_c
                effective = assumed if hottest is None else max(hottest, assumed)
                reason = (f"unreadable sensor(s) {sorted(reading.unreadable)} treated as hot "
                          f"({assumed:.1f} C); {reason}")
            self.last_reading, self.effective_c = reading, effective
            level = self._next_level(effective)
            critical = self.critical or (hottest is not None and hottest >= self.critical_c)
            if level == self.level and critical == self.critical:
                return None
            before = self.band
            self.level, self.critical = level, critical
            wanted = {action for band in self.bands[:level + 1] for action in band.actions}
            if critical:
                wanted.add("shutdown")
                reason = f"hottest sensor {hottest:.1f} C >= critical {self.critical_c:.1f} C"
            on = [a for a in SEVERITY if a in wanted - self.active]
            off = [a for a in reversed(SEVERITY) if a in self.active - wanted]
            self.active = wanted
            transition = Transition(time.time(), before, self.band, round(effective, 2), reason, on, off)
            self.transitions.append(transition)
        log.warning("thermal: %s -> %s (%s)", before, transition.to_band, reason)
        self.on_transition(transition)
        for action in off:
            self.actuator.apply_thermal_action(action, False, reason)
        for action in on:
            self.actuator.apply_thermal_action(action, True, reason)
        return transition

    def _next_level(self, temp: float) -> int:
        level = self.level
        while level + 1 < len(self.bands) and temp >= self.bands[level + 1].enter_c:
            level += 1
        while level >= 0 and temp < self.bands[level].exit_c:
            level -= 1
        return level

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "managed": self.unmanaged is None,
                "unmanaged": self.unmanaged,
                "band": self.band,
                "temperature_c": self.effective_c,
                "sensors": dict(self.last_reading.temps),
                "unreadable": dict(self.last_reading.unreadable),
                "actions": [a for a in SEVERITY if a in self.active],
                "admission_paused": self.admission_paused,
                "transitions": [asdict(t) for t in list(self.transitions)[-10:]],
            }

    def start(self) -> None:
        if self.unmanaged is not None:
            log.warning("thermal: unmanaged (%s)", self.unmanaged)
            return
        self._thread = threading.Thread(target=self._run, name="thermal-governor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate(self.sensors.read())
            except Exception:  # the governor must outlive any sensor or actuator bug
                log.exception("thermal: evaluation failed")
            self._stop.wait(self.poll_s)
