"""Video sources (synthetic, file, V4L2 device) and the file sink of the video worker.

A *clip* source (synthetic or file) is decoded up front and replayed in a loop at the profile's
frame rate: it stands for a capture card that DMA-writes decoded frames into memory, so decoding a
file never competes with dehazing for the video core. A *device* source reads /dev/videoN through
OpenCV's V4L2 backend; each read blocks until the card delivers the next frame.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.worker_process import WorkerFailure


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    fps: float
    pixel_format: str  # rgb24 | bgr24 | nv12


def from_bgr(frame: np.ndarray, pixel_format: str) -> np.ndarray:
    import cv2

    if pixel_format == "bgr24":
        return np.ascontiguousarray(frame)
    if pixel_format == "rgb24":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    height, width = frame.shape[:2]
    i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    nv12 = np.empty_like(i420)
    nv12[:height] = i420[:height]
    chroma = i420[height:].reshape(2, height // 2 * width // 2)
    nv12[height:] = np.stack(chroma, axis=1).reshape(height // 2, width)
    return nv12


def to_bgr(frame: np.ndarray, pixel_format: str) -> np.ndarray:
    import cv2

    if pixel_format == "bgr24":
        return frame
    if pixel_format == "rgb24":
        return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_NV12)


class ClipSource:
    """Preloaded frames replayed in a loop; frame i is due at start + i / fps."""

    live = False

    def __init__(self, frames: list[np.ndarray], description: str):
        self.frames = frames
        self.description = description

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index % len(self.frames)]

    def close(self) -> None:
        self.frames = []


class DeviceSource:
    """A V4L2 capture device; `read` blocks until the next frame arrives."""

    live = True

    def __init__(self, capture, fmt: VideoFormat, description: str):
        self._capture = capture
        self._fmt = fmt
        self.description = description

    def read(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok:
            raise WorkerFailure(f"{self.description}: the device stopped delivering frames")
        return _fit(frame, self._fmt)

    def close(self) -> None:
        self._capture.release()


def _fit(bgr: np.ndarray, fmt: VideoFormat) -> np.ndarray:
    import cv2

    if bgr.shape[:2] != (fmt.height, fmt.width):
        bgr = cv2.resize(bgr, (fmt.width, fmt.height), interpolation=cv2.INTER_AREA)
    return from_bgr(bgr, fmt.pixel_format)


def open_source(spec: str, fmt: VideoFormat, preload_frames: int) -> ClipSource | DeviceSource:
    """`synthetic`, a video file, or /dev/videoN; a missing or unreadable one is a WorkerFailure."""
    import cv2

    if spec == "synthetic":
        return _synthetic_source(fmt, preload_frames)
    path = Path(spec)
    if spec.startswith("/dev/"):
        if not path.exists():
            raise WorkerFailure(f"capture device {spec}: not found (is the capture card connected?)")
        capture = cv2.VideoCapture(spec, cv2.CAP_V4L2)
        if not capture.isOpened():
            raise WorkerFailure(f"capture device {spec}: exists but OpenCV/V4L2 cannot open it")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, fmt.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, fmt.height)
        capture.set(cv2.CAP_PROP_FPS, fmt.fps)
        return DeviceSource(capture, fmt, f"capture device {spec}")
    if not path.is_file():
        raise WorkerFailure(f"video file {spec}: not found; expected 'synthetic', a video file or /dev/videoN")
    capture = cv2.VideoCapture(str(path))
    frames = []
    while capture.isOpened() and len(frames) < preload_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(_fit(frame, fmt))
    capture.release()
    if not frames:
        raise WorkerFailure(f"video file {spec}: OpenCV decoded no frames (corrupt or unsupported codec)")
    return ClipSource(frames, f"video file {spec} ({len(frames)} frames, looped)")


def _synthetic_source(fmt: VideoFormat, count: int) -> ClipSource:
    """Smoky laparoscopic frames from the kernels' seeded generator (RGB), in the profile's format."""
    try:
        from kernels.synthetic import smoky_clip
    except ImportError as exc:
        raise WorkerFailure(f"synthetic source needs kernels.synthetic ({exc})") from exc
    frames = [_fit(np.ascontiguousarray(rgb[..., ::-1]), fmt)
              for rgb in smoky_clip(width=fmt.width, height=fmt.height, frames=min(count, 30), seed=0)]
    return ClipSource(frames, f"synthetic smoky clip ({len(frames)} frames, looped)")


class FileSink:
    """Records dehazed frames (MJPEG AVI) from a writer thread; when it falls behind it drops, never blocks."""

    def __init__(self, path: Path, fmt: VideoFormat, depth: int = 4):
        import cv2

        self.path = path
        self.dropped = 0
        self._fmt = fmt
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fmt.fps, (fmt.width, fmt.height))
        if not self._writer.isOpened():
            raise WorkerFailure(f"video sink file {path}: OpenCV cannot open it for writing")
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._drain, name="file-sink", daemon=True)
        self._thread.start()

    def offer(self, frame: np.ndarray) -> None:
        try:
            self._queue.put_nowait(frame.copy())
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        while (frame := self._queue.get()) is not None:
            self._writer.write(to_bgr(frame, self._fmt.pixel_format))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._writer.release()
