"""Clip harness of issue 17: local-plume clips, real-clip scoring without ground truth, the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import orbox_cli

from kernels import Dehazer
from kernels.clips import (
    CLEAR_FRAMES,
    PLUME_T,
    evaluate_real_clips,
    format_clip_scores,
    format_real_reports,
    local_plume_clips,
    score_clip,
    veil_density,
)
from kernels.synthetic import make_scene, smoky_clip

WIDTH, HEIGHT = 320, 180


@pytest.fixture(scope="module")
def clips():
    return {clip.name: clip for clip in local_plume_clips(WIDTH, HEIGHT)}


def test_plume_starts_after_clear_frames_and_grows_at_one_place(clips):
    frames = list(clips["tip-plume"].frames())
    plume_area = [int((f.t < PLUME_T).sum()) for f in frames]
    assert plume_area[:CLEAR_FRAMES] == [0] * CLEAR_FRAMES
    assert all(b >= a for a, b in zip(plume_area, plume_area[1:], strict=False)) and plume_area[-1] > 0
    # Local: most of the view stays clear even when the plume is grown.
    assert (frames[-1].t >= 0.99)[clips["tip-plume"].metric_mask].mean() > 0.5


def test_moving_instrument_clip_has_no_smoke_and_moves(clips):
    frames = list(clips["moving-instrument"].frames())
    assert all((f.t == 1.0).all() for f in frames)
    assert not np.array_equal(frames[0].clean, frames[-1].clean)


def test_scores_of_a_pass_through_kernel(clips):
    # strength 0 returns every frame unchanged: no gain in the plume, bit-exact elsewhere.
    scores = [score_clip(clip, lambda w, h: Dehazer(w, h, strength=0.0)) for clip in clips.values()]
    by_name = {s.name: s for s in scores}
    assert by_name["tip-plume"].plume_frames > 0 and by_name["tip-plume"].plume_gain == 0.0
    assert by_name["moving-instrument"].plume_frames == 0
    assert all(s.clear_min_psnr == float("inf") for s in scores)
    table = format_clip_scores(scores)
    assert "tip-plume gain NOT met" in table and "moving-instrument unchanged met" in table


def test_veil_density_rises_with_smoke():
    clean = make_scene("c", "procedural", "none", seed=4, width=WIDTH, height=HEIGHT)
    smoky = make_scene("s", "procedural", "homogeneous", seed=4, width=WIDTH, height=HEIGHT, level=0.5)
    assert veil_density(smoky.hazy) > veil_density(clean.hazy) + 0.1


def test_correction_grid_is_zero_when_gated_and_nan_outside_the_disc():
    clean = make_scene("c", "procedural", "none", seed=4, width=WIDTH, height=HEIGHT)
    dehazer = Dehazer(WIDTH, HEIGHT)
    dehazer.process(clean.hazy)
    grid = dehazer.correction_grid()
    assert dehazer.stats["gated"] and np.isnan(grid).any() and np.nanmax(grid) == 0.0
    smoky = make_scene("s", "procedural", "homogeneous", seed=4, width=WIDTH, height=HEIGHT, level=0.5)
    dehazer.reset()
    dehazer.process(smoky.hazy)
    assert np.nanmean(dehazer.correction_grid()) > 0.2


def _write_clip(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def test_real_clip_report_and_contact_sheet(tmp_path):
    _write_clip(tmp_path / "a.avi", smoky_clip(WIDTH, HEIGHT, 8))
    (tmp_path / "notes.txt").write_text("not a video")
    sheet = tmp_path / "sheet.png"
    (report,) = evaluate_real_clips(tmp_path, sheet, Dehazer)
    assert report.name == "a" and report.frames == 8
    assert 0.0 <= report.smoky_cells <= 1.0 and report.mean_change >= 0.0
    image = cv2.imread(str(sheet))
    assert image.shape == (HEIGHT, 9 * WIDTH, 3)  # 3 frames x (input | output | correction)
    assert "a " in format_real_reports([report])


def test_cli_clips_needs_a_video(tmp_path):
    result = orbox_cli("dehaze", "eval", "--clips", str(tmp_path), "--sheet", str(tmp_path / "s.png"))
    assert result.returncode != 0 and "no readable video" in result.stderr and "Traceback" not in result.stderr


def test_cli_local_plume_scores_each_seed():
    result = orbox_cli("dehaze", "eval", "--local-plume", "--clip-size", "320x180", "--seed", "1", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "seed 1, 320x180:" in result.stdout and "seed 2, 320x180:" in result.stdout
    assert result.stdout.count("tip-plume gain") == 2
