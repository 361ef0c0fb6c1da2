"""The serial MCU protocol: small binary frames with a CRC, shared by the client and the simulator.

Frame layout (all integers big-endian)::

    0xA5 | LEN | SEQ | CMD | PAYLOAD (LEN bytes, at most 64) | CRC16

CRC16 is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over LEN, SEQ, CMD and PAYLOAD. A reply
echoes SEQ and sets bit 7 of CMD. A frame with a bad CRC or length is dropped by the receiver; the
MCU answers it with NAK(bad_crc) so the host can retry. The decoder resynchronises on the next
start byte, so line noise costs one frame, not the link.

Commands (request payload -> reply payload):

- FEED        ()             -> ()                        kick the MCU's hardware watchdog
- READ_TEMPS  ()             -> count:u8, count x i16     centi-degrees C; -32768 = sensor fault
- GET_FAN     ()             -> duty:u8                   percent
- SET_FAN     duty:u8        -> duty:u8                   percent, 0..100
- RESET_CAUSE ()             -> cause:u8, resets:u16      why the MCU last reset the host
- SET_TIMEOUT seconds:u16    -> seconds:u16               watchdog timeout
- NAK                        <- cmd:u8, error:u8          the request was refused
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

SOF = 0xA5
MAX_PAYLOAD = 64
REPLY_BIT = 0x80
SENSOR_FAULT = -32768
_HEADER = 4  # SOF, LEN, SEQ, CMD


class Cmd(IntEnum):
    FEED = 0x01
    READ_TEMPS = 0x02
    GET_FAN = 0x03
    SET_FAN = 0x04
    RESET_CAUSE = 0x05
    SET_TIMEOUT = 0x06
    NAK = 0x7F


class NakError(IntEnum):
    BAD_CRC = 1
    UNKNOWN_CMD = 2
    BAD_LENGTH = 3
    BAD_VALUE = 4


class ResetCause(IntEnum):
    POWER_ON = 0
    WATCHDOG = 1
    BROWNOUT = 2
    SOFTWARE = 3


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@dataclass(frozen=True)
class Frame:
    seq: int
    cmd: int
    payload: bytes = b""

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds the {MAX_PAYLOAD}-byte frame limit")
        body = bytes([len(self.payload), self.seq & 0xFF, self.cmd & 0xFF]) + self.payload
        return bytes([SOF]) + body + struct.pack(">H", crc16_ccitt(body))


@dataclass(frozen=True)
class FrameError:
    """A frame the decoder dropped; `seq` is what the (possibly corrupt) header said."""

    reason: str
    seq: int


class FrameDecoder:
    """Incremental decoder: feed it raw bytes, get complete frames and rejected ones back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self._buffer.extend(data)
        out: list[Frame | FrameError] = []
        while True:
            start = self._buffer.find(SOF)
            if start < 0:
                self._buffer.clear()
                return out
            del self._buffer[:start]
            if len(self._buffer) < _HEADER:
                return out
            length, seq = self._buffer[1], self._buffer[2]
            if length > MAX_PAYLOAD:
                out.append(FrameError(f"length {length} exceeds {MAX_PAYLOAD}", seq))
                del self._buffer[:1]
                continue
            total = _HEADER + length + 2
            if len(self._buffer) < total:
                return out
            body = bytes(self._buffer[1:_HEADER + length])
            (crc,) = struct.unpack(">H", self._buffer[_HEADER + length:total])
            if crc != crc16_ccitt(body):
                out.append(FrameError(f"bad CRC {crc:#06x}, computed {crc16_ccitt(body):#06x}", seq))
                del self._buffer[:1]
                continue
            out.append(Frame(seq=seq, cmd=self._buffer[3], payload=bytes(self._buffer[_HEADER:_HEADER + length])))
            del self._buffer[:total]


def encode_temps(temps_c: list[float | None]) -> bytes:
    values = [SENSOR_FAULT if t is None else max(-32767, min(32767, round(t * 100))) for t in temps_c]
    return struct.pack(f">B{len(values)}h", len(values), *values)


def decode_temps(payload: bytes) -> list[float | None]:
    if not payload or len(payload) != 1 + 2 * payload[0]:
        raise ValueError(f"READ_TEMPS reply of {len(payload)} bytes is malformed")
    values = struct.unpack(f">{payload[0]}h", payload[1:])
    return [None if v == SENSOR_FAULT else v / 100.0 for v in values]
