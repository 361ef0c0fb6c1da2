"""A single-writer shared-memory ring of video frames (a file in /dev/shm, mmap'd).

The video worker dehazes straight into the next slot (no copy) and publishes it; a display
process or the supervisor's MJPEG preview reads the newest frame without ever blocking the writer.
The supervisor creates the file (so it outlives video worker restarts) and removes it at shutdown.

Layout: a 64-byte header (magic, version, slots, height, width, channels, frame bytes, latest
published sequence number), then per slot a 64-byte header (sequence, capture time in ns) and the
frame. A reader checks the slot's sequence before and after copying (a seqlock); if the writer
lapped it, it retries.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"ORBXRING"
VERSION = 1
_HEADER = struct.Struct("<8sIIIIIQQ")  # magic, version, slots, height, width, channels, frame_bytes, latest
_SLOT_HEADER = 64
_ALIGN = 64


def _aligned(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def frame_shape(width: int, height: int, pixel_format: str) -> tuple[int, ...]:
    """NV12 is one plane of height*3/2 rows; RGB/BGR are height x width x 3."""
    return (height * 3 // 2, width) if pixel_format == "nv12" else (height, width, 3)


class FrameRing:
    def __init__(self, path: Path, mapping: mmap.mmap):
        self.path = path
        self._map = mapping
        magic, version, self.slots, height, width, channels, self.frame_bytes, _ = _HEADER.unpack_from(mapping, 0)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"{path}: not an orbox frame ring (magic {magic!r}, version {version})")
        self.shape = (height, width) if channels == 1 else (height, width, channels)
        self._stride = _SLOT_HEADER + _aligned(self.frame_bytes)
        self._seq_view = np.frombuffer(mapping, dtype=np.uint64, count=1, offset=_HEADER.size - 8)

    @classmethod
    def create(cls, path: str | os.PathLike, shape: tuple[int, ...], slots: int) -> FrameRing:
        path = Path(path)
        channels = shape[2] if len(shape) == 3 else 1
        frame_bytes = int(np.prod(shape))
        size = _ALIGN + slots * (_SLOT_HEADER + _aligned(frame_bytes))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        _HEADER.pack_into(mapping, 0, MAGIC, VERSION, slots, shape[0], shape[1], channels, frame_bytes, 0)
        return cls(path, mapping)

    @classmethod
    def attach(cls, path: str | os.PathLike) -> FrameRing:
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            mapping = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        return cls(path, mapping)

    @property
    def latest(self) -> int:
        return int(self._seq_view[0])

    def _slot(self, seq: int) -> tuple[np.ndarray, np.ndarray]:
        offset = _ALIGN + (seq % self.slots) * self._stride
        header = np.frombuffer(self._map, dtype=np.uint64, count=2, offset=offset)
        frame = np.frombuffer(self._map, dtype=np.uint8, count=self.frame_bytes, offset=offset + _SLOT_HEADER)
        return header, frame.reshape(self.shape)

    def next_slot(self) -> np.ndarray:
        """The writable frame buffer of the next sequence number (marked as being written)."""
        header, frame = self._slot(self.latest + 1)
        header[0] = 0
        return frame

    def publish(self, capture_ns: int) -> int:
        seq = self.latest + 1
        header, _ = self._slot(seq)
        header[1] = capture_ns
        header[0] = seq
        self._seq_view[0] = seq
        return seq

    def read_latest(self, retries: int = 8) -> tuple[int, int, np.ndarray] | None:
        """(sequence, capture ns, copy of the frame) of the newest frame, or None before the first."""
        for _ in range(retries):
            seq = self.latest
            if seq == 0:
                return None
            header, frame = self._slot(seq)
            if int(header[0]) != seq:
                continue
            capture_ns, copy = int(header[1]), frame.copy()
            if int(header[0]) == seq:
                return seq, capture_ns, copy
        return None

    def close(self) -> None:
        self._seq_view = None
        try:
            self._map.close()
        except BufferError:  # a caller still holds a view; the mapping goes with the process
            pass
