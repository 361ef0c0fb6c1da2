"""Host side of the serial MCU link (pyserial): feed, temperatures, fan duty, reset cause."""

from __future__ import annotations

import struct
import threading
import time

from appliance.mcu_protocol import (
    REPLY_BIT,
    Cmd,
    Frame,
    FrameDecoder,
    FrameError,
    NakError,
    ResetCause,
    decode_temps,
)

_RETRIES = 3


class McuError(Exception):
    """The MCU did not answer, or refused the request."""


class McuClient:
    """One request in flight at a time (a lock serialises the governor and the watchdog feeder)."""

    def __init__(self, port: str, baud: int = 115200, timeout_s: float = 0.5):
        import serial  # pyserial; imported here so the box can run without a serial MCU

        self.port = port
        try:
            self._serial = serial.Serial(port, baud, timeout=0.02, write_timeout=timeout_s)
        except (serial.SerialException, OSError) as exc:
            raise McuError(f"serial port {port}: cannot open ({exc})") from exc
        self._timeout_s = timeout_s
        self._decoder = FrameDecoder()
        self._lock = threading.Lock()
        self._seq = 0
        self.rejected_frames = 0

    def close(self) -> None:
        self._serial.close()

    def feed(self) -> None:
        self._request(Cmd.FEED)

    def read_temps(self) -> list[float | None]:
        return decode_temps(self._request(Cmd.READ_TEMPS))

    def get_fan(self) -> int:
        return self._request(Cmd.GET_FAN)[0]

    def set_fan(self, duty_percent: int) -> int:
        if not 0 <= duty_percent <= 100:
            raise ValueError(f"fan duty must be 0..100 percent, got {duty_percent}")
        return self._request(Cmd.SET_FAN, bytes([duty_percent]))[0]

    def reset_cause(self) -> tuple[str, int]:
        cause, resets = struct.unpack(">BH", self._request(Cmd.RESET_CAUSE))
        return ResetCause(cause).name.lower(), resets

    def set_timeout(self, seconds: int) -> int:
        return struct.unpack(">H", self._request(Cmd.SET_TIMEOUT, struct.pack(">H", seconds)))[0]

    def _request(self, cmd: Cmd, payload: bytes = b"") -> bytes:
        with self._lock:
            last_problem = "no reply"
            for _ in range(_RETRIES):
                self._seq = (self._seq + 1) & 0xFF
                self._serial.write(Frame(self._seq, cmd, payload).encode())
                reply = self._await_reply(self._seq)
                if reply is None:
                    last_problem = f"no reply within {self._timeout_s}s"
                    continue
                if reply.cmd == Cmd.NAK:
                    error = NakError(reply.payload[1]) if len(reply.payload) == 2 else None
                    last_problem = f"NAK {error.name if error else reply.payload.hex()}"
                    if error is NakError.BAD_CRC:
                        continue
                    break
                if reply.cmd != cmd | REPLY_BIT:
                    last_problem = f"reply command {reply.cmd:#04x} does not answer {cmd.name}"
                    continue
                return reply.payload
            raise McuError(f"MCU on {self.port}: {cmd.name} failed ({last_problem})")

    def _await_reply(self, seq: int) -> Frame | None:
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            data = self._serial.read(256)
            for item in self._decoder.feed(data) if data else []:
                if isinstance(item, FrameError):
                    self.rejected_frames += 1
                elif item.seq == seq:
                    return item
        return None
