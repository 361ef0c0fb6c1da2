"""The `video` worker: capture -> kernels.Dehazer -> shared-memory ring (+ optional file), paced.

Latency is measured per frame from its capture timestamp (when a clip frame is due, or when a
device read returned) to its publication in the ring, on CLOCK_MONOTONIC. A clip frame that is
due while an older one is still being processed is *dropped*, exactly as a capture card would
overwrite it; the worker then jumps to the newest due frame. Heartbeats carry frames processed,
frames dropped and p50/p99/max latency over the last `video.stats_window` frames.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from appliance.config import ApplianceConfig
from appliance.frame_ring import FrameRing
from appliance.protocol import Ready
from appliance.video_io import FileSink, VideoFormat, open_source
from appliance.worker_process import WorkerFailure, WorkerRuntime
from hw_profiles import Profile


def video_format(profile: Profile, config: ApplianceConfig) -> VideoFormat:
    """The profile's video format with the site config's overrides."""
    video = config.video
    return VideoFormat(width=video.width or profile.video.width, height=video.height or profile.video.height,
                       fps=float(video.fps or profile.video.fps), pixel_format=profile.video.pixel_format)


class LatencyWindow:
    """The last N per-frame latencies (seconds) and their percentiles in milliseconds."""

    def __init__(self, size: int):
        self._values = np.zeros(size, dtype=np.float64)
        self._count = 0

    def add(self, seconds: float) -> None:
        self._values[self._count % len(self._values)] = seconds
        self._count += 1

    def summary(self) -> dict[str, float] | None:
        if self._count == 0:
            return None
        values = self._values[:min(self._count, len(self._values))] * 1e3
        p50, p99 = np.percentile(values, [50, 99])
        return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
                "max_ms": round(float(values.max()), 3), "frames": int(len(values))}


class VideoWorker(WorkerRuntime):
    def run(self) -> None:
        cfg = self.spec.config.video
        self.fmt = video_format(self.profile, self.spec.config)
        try:
            from kernels import Dehazer
        except ImportError as exc:
            raise WorkerFailure(f"the dehaze kernel is not built ({exc}); run `make install`") from exc
        self.source = open_source(cfg.source, self.fmt, cfg.preload_frames)
        self.ring = FrameRing.attach(self.spec.options["ring_path"])
        self.dehazer = Dehazer(self.fmt.width, self.fmt.height, self.fmt.pixel_format, strength=cfg.strength,
                               threads=len(self.spec.cores))
        self.sink = FileSink(cfg.sink_file, self.fmt) if cfg.sink_file else None
        self.latency = LatencyWindow(cfg.stats_window)
        self.dropped = 0
        scheduling = _realtime(cfg.realtime_priority)
        self.send(Ready({"source": self.source.description, "scheduling": scheduling, "width": self.fmt.width,
                         "height": self.fmt.height, "fps": self.fmt.fps, "pixel_format": self.fmt.pixel_format,
                         "ring": str(self.ring.path)}))
        self.pending = 1  # frames keep coming: a video worker always has work
        self.start_heartbeats()
        try:
            if self.source.live:
                self._run_device()
            else:
                self._run_clip()
        finally:
            if self.sink is not None:
                self.sink.close()
            self.source.close()
            self.ring.close()

    def _run_clip(self) -> None:
        period_ns = int(1e9 / self.fmt.fps)
        due = time.monotonic_ns()
        index = 0
        while not self.stopping:
            while (wait := due - time.monotonic_ns()) > 0 and not self.stopping:
                self.drain_ops(wait / 1e9)
            late = (time.monotonic_ns() - due) // period_ns
            if late > 0:  # frames that were overwritten while we were busy
                self.dropped += late
                index += late
                due += late * period_ns
            self._process(self.source.frame(index), due)
            index += 1
            due += period_ns

    def _run_device(self) -> None:
        period_ns = int(1e9 / self.fmt.fps)
        last = None
        while not self.stopping:
            frame = self.source.read()
            captured = time.monotonic_ns()
            if last is not None:  # a gap of k periods means k-1 frames never reached us
                self.dropped += max(0, round((captured - last) / period_ns) - 1)
            last = captured
            self._process(frame, captured)
            self.drain_ops(0.0)

    def _process(self, frame: np.ndarray, captured_ns: int) -> None:
        out = self.ring.next_slot()
        self.dehazer.process(frame, out=out)
        self.ring.publish(captured_ns)
        self.latency.add((time.monotonic_ns() - captured_ns) / 1e9)
        self.progress += 1
        if self.sink is not None:
            self.sink.offer(out)

    def beat_details(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "latency": self.latency.summary(),
                "sink_dropped": self.sink.dropped if self.sink else 0,
                "smoke_level": _stat(self.dehazer.stats, "smoke_level")}


def _realtime(priority: int) -> str:
    """SCHED_FIFO for the video loop when asked (needs CAP_SYS_NICE): noisy neighbours cannot delay a frame.

    The loop sleeps between paced frames, and the kernel's RT throttling keeps 5% of the core for
    others even if it falls behind.
    """
    if priority == 0:
        return "normal"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        return f"normal (SCHED_FIFO {priority} refused: needs CAP_SYS_NICE)"
    return f"SCHED_FIFO {priority}"


def _stat(stats: Any, key: str) -> float | None:
    try:
        value = stats[key]
    except (KeyError, TypeError):
        value = getattr(stats, key, None)
    return None if value is None else round(float(value), 4)
