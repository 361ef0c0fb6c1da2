"""The local veil pass (issue 17): a plume in an otherwise clear view, against per-cell clear references."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import Dehazer
from kernels.clips import local_plume_clips
from kernels.colour import rgb_to_nv12
from kernels.quality import FLICKER_LIMIT
from kernels.synthetic import compose, procedural_tissue, scope_vignette, smoke_airlight

WIDTH, HEIGHT = 480, 272
CLEAR, SMOKY = 4, 10


class PlumeScene:
    """A static procedural view: clear frames, then a dense plume (t 0.4 at its core), fresh noise per frame."""

    def __init__(self, seed: int = 21) -> None:
        rng = np.random.default_rng(seed)
        self.clean = procedural_tissue(HEIGHT, WIDTH, rng)
        self.view = scope_vignette(HEIGHT, WIDTH, rng)
        self.airlight = smoke_airlight(rng)
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        blob = np.exp(-((xx - 0.45 * WIDTH) ** 2 + (yy - 0.5 * HEIGHT) ** 2) / (0.13 * WIDTH) ** 2)
        self.t = (1.0 - 0.6 * blob).astype(np.float32)
        self.noise = np.random.default_rng(seed + 1)
        inner = self.view >= 1.0
        self.plume = inner & (self.t < 0.85)
        self.clear = inner & (self.t >= 0.99)

    def frame(self, smoky: bool) -> np.ndarray:
        t = self.t if smoky else np.ones_like(self.t)
        return compose(self.clean, t, self.airlight, self.view, self.noise)

    def frames(self, clear: int = CLEAR, smoky: int = SMOKY) -> list[np.ndarray]:
        return [self.frame(False) for _ in range(clear)] + [self.frame(True) for _ in range(smoky)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(err * err))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def scene() -> PlumeScene:
    return PlumeScene()


@pytest.fixture(scope="module")
def frames(scene) -> list[np.ndarray]:
    return scene.frames()


def test_plume_is_cleared_and_the_clear_view_is_left_alone(scene, frames):
    dehazer = Dehazer(WIDTH, HEIGHT)
    outputs = [dehazer.process(f) for f in frames]
    for frame, out in zip(frames[:CLEAR], outputs[:CLEAR], strict=True):
        assert np.array_equal(out, frame)  # nothing to clear yet: bit-exact
    truth = scene.clean * 255.0
    last, out = frames[-1], outputs[-1]
    assert not dehazer.stats["gated"] and dehazer.stats["local_cells"] > 0
    assert psnr(out[scene.plume], truth[scene.plume]) >= psnr(last[scene.plume], truth[scene.plume]) + 3.0
    assert psnr(out[scene.clear], last[scene.clear]) >= 40.0
    outside = scene.view == 0.0
    assert np.array_equal(out[outside], last[outside])  # the vignette is never touched


def test_whole_frame_gate_alone_leaves_the_plume(frames):
    dehazer = Dehazer(WIDTH, HEIGHT, local_veil=0)
    assert all(np.array_equal(dehazer.process(f), f) for f in frames)


def test_smoke_free_frames_with_sensor_noise_pass_through_bit_exact(scene):
    dehazer = Dehazer(WIDTH, HEIGHT)
    for frame in scene.frames(clear=20, smoky=0):
        assert np.array_equal(dehazer.process(frame), frame)
        assert dehazer.stats["gated"] and dehazer.stats["local_cells"] == 0


def test_moving_bright_grey_instrument_is_left_bit_exact():
    clip = {c.name: c for c in local_plume_clips(WIDTH, HEIGHT)}["moving-instrument"]
    dehazer = Dehazer(WIDTH, HEIGHT)
    for frame in clip.frames():
        assert np.array_equal(dehazer.process(frame.hazy), frame.hazy)


def _plume_correction(dehazer: Dehazer, scene: PlumeScene) -> float:
    return float(np.nanmean(dehazer.correction_grid()[scene.t[2::4, 2::4] < 0.85]))


def test_gate_opens_within_frames_and_bridges_a_frame_without_evidence(scene):
    dehazer = Dehazer(WIDTH, HEIGHT)
    opened = []
    for frame in scene.frames(clear=CLEAR, smoky=4):
        dehazer.process(frame)
        opened.append(_plume_correction(dehazer, scene))
    # Evidence needs the veil in two frames in a row, then the gate rises fast.
    assert opened[CLEAR] == 0.0 and opened[CLEAR + 2] > 0.1 and opened[-1] >= opened[CLEAR + 2]
    # One clear frame: measured clear, so nothing is corrected; the next smoky frame has no evidence
    # yet (one veiled frame), and the slowly released gate still corrects it at once.
    for release, expect_bridged in ((0.15, True), (1.0, False)):
        dehazer = Dehazer(WIDTH, HEIGHT, veil_release=release)
        for frame in scene.frames(clear=CLEAR, smoky=4):
            dehazer.process(frame)
        gap = scene.frame(False)
        assert np.array_equal(dehazer.process(gap), gap)
        dehazer.process(scene.frame(True))
        assert (_plume_correction(dehazer, scene) > 0.1) == expect_bridged


def test_gate_closes_once_the_plume_is_gone(scene):
    dehazer = Dehazer(WIDTH, HEIGHT)
    for frame in scene.frames(clear=CLEAR, smoky=6):
        dehazer.process(frame)
    for frame in scene.frames(clear=40, smoky=0):
        assert np.array_equal(dehazer.process(frame), frame)  # the cells measure clear: t = 1 at once
    assert dehazer.stats["gated"]  # and the released gates let the frame bypass the recovery pass


def test_static_smoky_scene_does_not_flicker(scene):
    dehazer = Dehazer(WIDTH, HEIGHT)
    levels = [float(dehazer.process(f)[scene.plume].mean()) for f in scene.frames(clear=CLEAR, smoky=30)]
    assert dehazer.stats["local_cells"] > 0
    assert np.std(levels[CLEAR + 6:]) < FLICKER_LIMIT


def test_scene_cut_resets_the_local_state(frames):
    dehazer = Dehazer(WIDTH, HEIGHT)
    for frame in frames:
        dehazer.process(frame)
    assert dehazer.stats["local_cells"] > 0
    other = PlumeScene(seed=99).frame(False)  # another clear view: every cell changes at once
    out = dehazer.process(other)
    assert dehazer.stats["scene_cut"] and dehazer.stats["local_cells"] == 0
    assert np.array_equal(out, other)


@pytest.mark.parametrize("pixel_format", ["rgb24", "nv12"])
def test_local_pass_is_deterministic_across_runs_and_thread_counts(frames, pixel_format):
    stream = [rgb_to_nv12(f) if pixel_format == "nv12" else f for f in frames]
    runs = []
    for threads in (1, 2, 3, 1):
        dehazer = Dehazer(WIDTH, HEIGHT, pixel_format, threads=threads)
        runs.append([dehazer.process(f) for f in stream])
        assert dehazer.stats["local_cells"] > 0
    for other in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], other, strict=True))


def test_reset_forgets_the_local_state(frames):
    dehazer = Dehazer(WIDTH, HEIGHT)
    for frame in frames:
        dehazer.process(frame)
    dehazer.reset()
    assert np.array_equal(dehazer.process(frames[-1]), frames[-1])  # no reference: nothing to compare with


@pytest.mark.parametrize(("name", "value"), [("local_veil", 2), ("veil_t_min", 0.99), ("veil_attack", 0.0),
                                             ("veil_grow", -1)])
def test_bad_veil_parameters_are_rejected(name, value):
    with pytest.raises(ValueError, match=name):
        Dehazer(WIDTH, HEIGHT, **{name: value})
