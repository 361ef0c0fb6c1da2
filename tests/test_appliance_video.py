"""Video path pieces: the shared-memory frame ring, file source and file sink, NV12, and the
video worker end to end (file in -> dehazed frames in the ring and in a file, JPEG preview)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from appliance_data.fixtures import running_supervisor, site_config, wait_for, worker

from appliance.frame_ring import FrameRing, frame_shape
from appliance.video_io import VideoFormat, from_bgr, open_source, to_bgr
from appliance.worker_process import WorkerFailure


def _write_clip(path: Path, frames: int, width: int = 160, height: int = 128) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (width, height))
    images = []
    for index in range(frames):
        image = np.full((height, width, 3), 40 + 20 * index, np.uint8)
        image[:, : width // 2] = rng.integers(0, 255, (height, width // 2, 3), dtype=np.uint8)
        writer.write(image)
        images.append(image)
    writer.release()
    return images


def test_ring_returns_the_newest_published_frame(tmp_path: Path) -> None:
    ring = FrameRing.create(tmp_path / "ring", (4, 6, 3), slots=3)
    reader = FrameRing.attach(tmp_path / "ring")
    assert reader.read_latest() is None
    for seq in range(1, 6):
        ring.next_slot()[:] = seq
        assert ring.publish(capture_ns=1000 + seq) == seq
    latest_seq, capture_ns, frame = reader.read_latest()
    assert (latest_seq, capture_ns) == (5, 1005) and frame.shape == (4, 6, 3) and np.all(frame == 5)
    frame[:] = 0  # a copy: the reader cannot scribble on the writer's slot
    assert np.all(reader.read_latest()[2] == 5)
    ring.close()
    reader.close()


def test_ring_reader_never_sees_a_half_written_frame(tmp_path: Path) -> None:
    ring = FrameRing.create(tmp_path / "ring", (64, 64, 3), slots=2)
    reader = FrameRing.attach(tmp_path / "ring")
    done = threading.Event()

    def write() -> None:
        for seq in range(1, 3000):
            ring.next_slot()[:] = seq % 256
            ring.publish(seq)
        done.set()

    threading.Thread(target=write).start()
    torn = 0
    while not done.is_set():
        latest = reader.read_latest()
        if latest is not None and not np.all(latest[2] == latest[0] % 256):
            torn += 1
    assert torn == 0


def test_nv12_round_trip_keeps_the_picture() -> None:
    bgr = np.zeros((64, 96, 3), np.uint8)
    bgr[:, :48] = (30, 90, 200)
    bgr[:, 48:] = (220, 200, 40)
    nv12 = from_bgr(bgr, "nv12")
    assert nv12.shape == frame_shape(96, 64, "nv12") == (96, 96)
    back = to_bgr(nv12, "nv12")
    assert np.abs(back.astype(int) - bgr.astype(int)).mean() < 4


def test_file_source_preloads_and_fits_the_profile_format(tmp_path: Path) -> None:
    _write_clip(tmp_path / "clip.avi", frames=5, width=200, height=100)
    source = open_source(str(tmp_path / "clip.avi"), VideoFormat(160, 128, 30, "rgb24"), preload_frames=3)
    assert len(source.frames) == 3 and source.frame(4).shape == (128, 160, 3) and not source.live
    assert source.frame(3) is source.frame(0)  # looped


@pytest.mark.parametrize(("spec", "message"), [
    ("/dev/video99", "capture device /dev/video99: not found"),
    ("missing.avi", "video file missing.avi: not found"),
])
def test_missing_sources_are_named(spec: str, message: str) -> None:
    with pytest.raises(WorkerFailure, match=message):
        open_source(spec, VideoFormat(160, 128, 30, "rgb24"), preload_frames=3)


def test_unreadable_video_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(b"not a video")
    with pytest.raises(WorkerFailure, match="OpenCV decoded no frames"):
        open_source(str(tmp_path / "clip.avi"), VideoFormat(160, 128, 30, "rgb24"), preload_frames=3)


def test_video_worker_dehazes_a_file_into_the_ring_a_file_and_a_preview(tiny_bundle: Path,
                                                                        tmp_path: Path) -> None:
    _write_clip(tmp_path / "in.avi", frames=6)
    config = site_config(tmp_path, supervisor={"workers": ["video"], "critical_workers": ["video"]},
                         video={"source": str(tmp_path / "in.avi"), "sink_file": str(tmp_path / "out.avi")})
    with running_supervisor(tiny_bundle, config) as supervisor:
        wait_for(lambda: supervisor.video.stats()["frames"] >= 30, 10, "30 processed frames")
        stats = supervisor.video.stats()
        assert stats["latency"]["p50_ms"] > 0 and stats["latency"]["max_ms"] >= stats["latency"]["p99_ms"]
        assert 0.0 <= stats["smoke_level"] <= 1.0
        jpeg = supervisor.video.latest_jpeg()
        preview = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert preview.shape == (128, 160, 3)
        assert supervisor.video.latest_jpeg() == jpeg  # cached within 1/preview_fps
        info = worker(supervisor.status(), "video")["info"]
        assert info["source"].startswith(f"video file {tmp_path / 'in.avi'} (6 frames") and info["width"] == 160
        ring_path = supervisor.ring_path
    assert not ring_path.exists()  # removed at shutdown
    recorded = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert recorded.get(cv2.CAP_PROP_FRAME_COUNT) >= 20
    ok, frame = recorded.read()
    assert ok and frame.shape == (128, 160, 3)
