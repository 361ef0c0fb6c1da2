"""A simulated board MCU on a pseudo-terminal, for tests and the demo (`orbox mcu-sim`).

It speaks `appliance.mcu_protocol` on the master side of a pty; the host opens the slave side
with pyserial exactly as it would open /dev/ttyS1. Its hardware watchdog arms on the first FEED;
if no FEED follows within the timeout it "resets the host": it records reset cause WATCHDOG and
disarms until the next FEED. Temperatures come from a JSON file (a list of numbers or nulls,
re-read on every request, so a test can ramp them) or a fixed list. Every event is appended as
one JSON line to the events file, so tests can see feeds arrive and stop.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import time
import tty
from pathlib import Path
from typing import Any

from appliance.mcu_protocol import (
    REPLY_BIT,
    Cmd,
    Frame,
    FrameDecoder,
    FrameError,
    NakError,
    ResetCause,
    encode_temps,
)


class McuSimulator:
    def __init__(self, *, timeout_s: float, temps: list[float | None], temps_file: Path | None,
                 events_file: Path | None, fan_duty: int = 30):
        self.timeout_s = timeout_s
        self.temps = temps
        self.temps_file = temps_file
        self.events_file = events_file
        self.fan_duty = fan_duty
        self.reset_cause = ResetCause.POWER_ON
        self.resets = 0
        self.last_feed: float | None = None
        self._decoder = FrameDecoder()
        self._events = open(events_file, "a", buffering=1) if events_file else None

    def event(self, name: str, **fields: Any) -> None:
        if self._events:
            self._events.write(json.dumps({"t": time.time(), "event": name, **fields}) + "\n")

    def close(self) -> None:
        if self._events:
            self._events.close()

    def handle_bytes(self, data: bytes) -> bytes:
        """Decode what the host sent and return the reply bytes."""
        out = bytearray()
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                self.event("bad_frame", reason=item.reason)
                out += Frame(item.seq, Cmd.NAK, bytes([0, NakError.BAD_CRC])).encode()
            else:
                out += self._answer(item).encode()
        return bytes(out)

    def tick(self, now: float) -> None:
        if self.last_feed is not None and now - self.last_feed > self.timeout_s:
            self.resets += 1
            self.reset_cause = ResetCause.WATCHDOG
            self.last_feed = None
            self.event("watchdog_reset", resets=self.resets)

    def _answer(self, frame: Frame) -> Frame:
        def reply(payload: bytes = b"") -> Frame:
            return Frame(frame.seq, frame.cmd | REPLY_BIT, payload)

        def nak(error: NakError) -> Frame:
            self.event("nak", cmd=frame.cmd, error=error.name)
            return Frame(frame.seq, Cmd.NAK, bytes([frame.cmd, error]))

        expected_len = {Cmd.SET_FAN: 1, Cmd.SET_TIMEOUT: 2}.get(frame.cmd, 0)
        if frame.cmd not in {c.value for c in Cmd} or frame.cmd == Cmd.NAK:
            return nak(NakError.UNKNOWN_CMD)
        if len(frame.payload) != expected_len:
            return nak(NakError.BAD_LENGTH)
        if frame.cmd == Cmd.FEED:
            self.last_feed = time.monotonic()
            self.event("feed")
            return reply()
        if frame.cmd == Cmd.READ_TEMPS:
            return reply(encode_temps(self._current_temps()))
        if frame.cmd == Cmd.GET_FAN:
            return reply(bytes([self.fan_duty]))
        if frame.cmd == Cmd.SET_FAN:
            if frame.payload[0] > 100:
                return nak(NakError.BAD_VALUE)
            self.fan_duty = frame.payload[0]
            self.event("set_fan", duty=self.fan_duty)
            return reply(bytes([self.fan_duty]))
        if frame.cmd == Cmd.RESET_CAUSE:
            return reply(struct.pack(">BH", self.reset_cause, self.resets))
        (seconds,) = struct.unpack(">H", frame.payload)
        if seconds == 0:
            return nak(NakError.BAD_VALUE)
        self.timeout_s = float(seconds)
        self.event("set_timeout", seconds=seconds)
        return reply(frame.payload)

    def _current_temps(self) -> list[float | None]:
        if self.temps_file is None:
            return self.temps
        try:
            values = json.loads(self.temps_file.read_text())
            return [None if v is None else float(v) for v in values]
        except (OSError, ValueError, TypeError):
            return [None]  # an unreadable sensor is reported as a fault, never as a temperature


def serve_pty(sim: McuSimulator, link: Path | None, on_ready=print) -> None:
    """Run the simulator on a fresh pty until SIGTERM/SIGINT; `link` becomes a symlink to the slave."""
    master, slave = os.openpty()
    tty.setraw(slave)
    slave_name = os.ttyname(slave)
    if link is not None:
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(slave_name)
        os.replace(tmp, link)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sim.event("start", port=slave_name)
    on_ready(f"mcu-sim: serving on {slave_name}" + (f" (link {link})" if link else ""))
    try:
        while not stop:
            readable, _, _ = select.select([master], [], [], 0.05)
            if readable:
                reply = sim.handle_bytes(os.read(master, 4096))
                if reply:
                    os.write(master, reply)
            sim.tick(time.monotonic())
    finally:
        sim.event("stop")
        sim.close()
        if link is not None:
            link.unlink(missing_ok=True)
        os.close(master)
        os.close(slave)
