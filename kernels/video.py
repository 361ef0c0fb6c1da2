"""`orbox dehaze run`: dehaze a video file, a capture device or a synthetic clip with OpenCV I/O.

The output file is written under a temporary name and renamed only when complete, so an
interrupted run never leaves a half-written video behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kernels.dehazer import Dehazer
from kernels.synthetic import smoky_clip


class VideoError(Exception):
    """An input cannot be opened or read, or the output cannot be written."""


@dataclass(frozen=True)
class RunSummary:
    frames: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    output: Path


def open_source(source: str) -> tuple[cv2.VideoCapture, int, int, float, int]:
    """Open a file or /dev/videoN; returns (capture, width, height, fps, frame count or 0)."""
    if not source.startswith("/dev/video") and not Path(source).is_file():
        raise VideoError(f"--input {source}: no such file")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise VideoError(f"--input {source}: OpenCV cannot open it as a video (expected a video file or /dev/videoN)")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    return capture, width, height, fps, count


def read_frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield np.ascontiguousarray(frame)


@contextlib.contextmanager
def atomic_video_writer(path: Path, fps: float, size: tuple[int, int]) -> Iterator[cv2.VideoWriter]:
    """VideoWriter on a temp file in the target directory, renamed into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(tmp), fourcc, fps, size)
    if not writer.isOpened():
        raise VideoError(f"--output {path}: OpenCV cannot write this container (use .mp4 or .avi)")
    try:
        yield writer
        writer.release()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        writer.release()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def dehaze_video(frames: Iterator[np.ndarray], width: int, height: int, fps: float, output: Path, *,
                 strength: float = 1.0, side_by_side: bool = False, pixel_format: str = "bgr24",
                 on_frame=None) -> RunSummary:
    """Dehaze every frame (OpenCV's BGR by default) into `output`; returns latency percentiles."""
    dehazer = Dehazer(width, height, pixel_format, strength=strength)
    out = np.empty((height, width, 3), np.uint8)
    canvas = np.empty((height, width * 2, 3), np.uint8) if side_by_side else None
    size = (width * 2, height) if side_by_side else (width, height)
    latencies = []
    with atomic_video_writer(output, fps, size) as writer:
        for frame in frames:
            start = time.perf_counter()
            dehazer.process(frame, out=out)
            latencies.append((time.perf_counter() - start) * 1e3)
            if canvas is not None:
                canvas[:, :width] = frame
                canvas[:, width:] = out
                writer.write(canvas)
            else:
                writer.write(out)
            if on_frame:
                on_frame()
    if not latencies:
        raise VideoError("the input delivered no frames")
    lat = np.array(latencies)
    return RunSummary(len(lat), float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(lat.max()), output)


def synthetic_frames(width: int, height: int, count: int, fps: float) -> Iterator[np.ndarray]:
    """The procedural smoky clip, converted to OpenCV's BGR order."""
    for rgb in smoky_clip(width, height, count, fps=fps):
        yield np.ascontiguousarray(rgb[..., ::-1])
