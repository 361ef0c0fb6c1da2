"""`orbox dehaze run`: the video tool end to end through the real CLI entry point and OpenCV I/O."""

from __future__ import annotations

import cv2
from conftest import orbox_cli


def test_synthetic_clip_side_by_side(tmp_path):
    output = tmp_path / "clip.mp4"
    result = orbox_cli("dehaze", "run", "--synthetic", "--frames", "6", "--size", "320x240", "--side-by-side",
                       "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "p50" in result.stdout and "p99" in result.stdout
    capture = cv2.VideoCapture(str(output))
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left behind


def test_file_input_round_trip(tmp_path):
    source, output = tmp_path / "in.avi", tmp_path / "out.avi"
    assert orbox_cli("dehaze", "run", "--synthetic", "--frames", "4", "--size", "160x120",
                     "--output", str(source)).returncode == 0
    result = orbox_cli("dehaze", "run", "--input", str(source), "--output", str(output), "--strength", "0.5")
    assert result.returncode == 0, result.stderr
    assert "4 frames" in result.stdout


def test_missing_input_is_a_clear_error_and_writes_nothing(tmp_path):
    result = orbox_cli("dehaze", "run", "--input", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "out.mp4"))
    assert result.returncode != 0
    assert "nope.mp4: no such file" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unreadable_input_is_a_clear_error(tmp_path):
    bogus = tmp_path / "text.mp4"
    bogus.write_text("not a video")
    result = orbox_cli("dehaze", "run", "--input", str(bogus), "--output", str(tmp_path / "out.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cannot open" in result.stderr or "no frames" in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_input_and_synthetic_are_exclusive(tmp_path):
    result = orbox_cli("dehaze", "run", "--synthetic", "--input", "x.mp4", "--output", str(tmp_path / "o.mp4"))
    assert result.returncode == 2 and "exactly one" in result.stderr
