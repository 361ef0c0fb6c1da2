"""Quality scoring of the kernel on the synthetic suite: PSNR, SSIM, CIEDE2000, do-no-harm, flicker.

Scores are taken only inside the scope disc (the vignette is black in every version and would
inflate them). `orbox dehaze eval` prints `evaluate()`'s table; the tests assert its targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.colour import nv12_to_rgb, rgb_to_nv12
from kernels.dehazer import Dehazer
from kernels.reference import full_filter_twin, textbook_dcp
from kernels.synthetic import Scene, clean_suite, make_scene, standard_suite

# docs/dehaze.md#baselines: textbook DCP given the true airlight on the suite its figures come from
# (PSNR dB, mean CIEDE2000). Printed beside ours so the two suites' difficulty can be compared.
BRIEF_TRUE_AIRLIGHT = (25.8, 2.2)
WARMUP_FRAMES = 3  # the temporal filters settle on a static scene within a few frames


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float
    delta_e: float


def score(result: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> Score:
    """PSNR (dB), mean SSIM and mean CIEDE2000 of uint8 `result` against float `truth`, inside `mask`."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    got = result.astype(np.float32) / 255.0
    err = (got - truth)[mask]
    psnr = float(10.0 * np.log10(1.0 / max(float(np.mean(err * err)), 1e-12)))
    _, ssim_map = structural_similarity(truth, got, channel_axis=2, data_range=1.0, full=True)
    ssim = float(ssim_map.mean(axis=2)[mask].mean())
    delta_e = float(deltaE_ciede2000(rgb2lab(truth[mask][None]), rgb2lab(got[mask][None])).mean())
    return Score(psnr, ssim, delta_e)


def run_kernel(scene: Scene, pixel_format: str = "rgb24", **tuning) -> tuple[np.ndarray, Dehazer]:
    """Dehaze a static scene for a few frames (temporal state settles) and return the last output."""
    height, width = scene.hazy.shape[:2]
    dehazer = Dehazer(width, height, pixel_format, **tuning)
    frame = rgb_to_nv12(scene.hazy) if pixel_format == "nv12" else scene.hazy
    for _ in range(WARMUP_FRAMES):
        out = dehazer.process(frame)
    return (nv12_to_rgb(out) if pixel_format == "nv12" else out), dehazer


@dataclass(frozen=True)
class SceneResult:
    name: str
    hazy: Score
    textbook: Score
    orbox: Score
    full_filter: Score
    textbook_true_airlight: Score


def evaluate(scenes: list[Scene] | None = None, progress: Callable[[str], None] | None = None) -> list[SceneResult]:
    results = []
    for scene in scenes if scenes is not None else standard_suite():
        if progress:
            progress(scene.name)
        out, dehazer = run_kernel(scene)
        results.append(SceneResult(
            scene.name,
            hazy=score(scene.hazy, scene.clean, scene.metric_mask),
            textbook=score(textbook_dcp(scene.hazy), scene.clean, scene.metric_mask),
            orbox=score(out, scene.clean, scene.metric_mask),
            full_filter=score(full_filter_twin(scene.hazy, dehazer), scene.clean, scene.metric_mask),
            textbook_true_airlight=score(textbook_dcp(scene.hazy, airlight=scene.airlight), scene.clean,
                                         scene.metric_mask),
        ))
    return results


def mean_score(results: list[SceneResult], row: str) -> Score:
    scores = [getattr(r, row) for r in results]
    return Score(*(float(np.mean([getattr(s, f) for s in scores])) for f in ("psnr", "ssim", "delta_e")))


def do_no_harm(scenes: list[Scene] | None = None) -> dict[str, float]:
    """PSNR of the kernel's output against its own smoke-free input, per clean scene."""
    report = {}
    for scene in scenes if scenes is not None else clean_suite():
        out, _ = run_kernel(scene)
        err = (out.astype(np.float32) - scene.hazy.astype(np.float32))
        mse = float(np.mean(err * err)) / 255.0**2
        report[scene.name] = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return report


FLICKER_LIMIT = 0.5  # 8-bit codes: see `flicker`


def flicker(frames: int = 30, *, seed: int = 11, **tuning) -> dict[str, float]:
    """Brightness pumping on a static smoky scene with fresh sensor noise in every frame.

    Returns the standard deviation over time of the mean output level inside the disc (in 8-bit
    codes) for the kernel and for the input. Jitter of the airlight or smoke level shows up as
    global pumping; sensor noise averages out over ~10^5 pixels. The limit of 0.5 code is half a
    quantisation step, well below the ~2-3 codes a viewer notices at mid-grey (Weber ~1-2 %).
    """
    scene = make_scene("flicker", "procedural", "patchy", seed=seed, level=0.6)
    height, width = scene.hazy.shape[:2]
    dehazer = Dehazer(width, height, **tuning)
    rng = np.random.default_rng(seed)
    levels_out, levels_in = [], []
    base = scene.hazy.astype(np.float32)
    view = scene.view_mask[..., None]
    for _ in range(frames):
        noisy = np.clip(np.rint(base + rng.normal(0, 1.5, base.shape) * view), 0, 255).astype(np.uint8)
        out = dehazer.process(noisy)
        levels_in.append(float(noisy[scene.metric_mask].mean()))
        levels_out.append(float(out[scene.metric_mask].mean()))
    settle = WARMUP_FRAMES
    return {"output": float(np.std(levels_out[settle:])), "input": float(np.std(levels_in[settle:]))}


def format_table(results: list[SceneResult]) -> str:
    lines = [f"{'scene':<22}{'method':<14}{'PSNR dB':>9}{'SSIM':>8}{'dE00':>8}"]
    rows = (("hazy input", "hazy"), ("textbook DCP", "textbook"), ("orbox", "orbox"))
    for result in [*results, None]:
        name = result.name if result else "MEAN"
        for label, attr in rows:
            s = getattr(result, attr) if result else mean_score(results, attr)
            lines.append(f"{name:<22}{label:<14}{s.psnr:>9.2f}{s.ssim:>8.3f}{s.delta_e:>8.2f}")
            name = ""
        lines.append("")
    fast, full = mean_score(results, "orbox"), mean_score(results, "full_filter")
    lines.append(f"fast guided filter (s=4) vs full-resolution guided filter: {fast.psnr:.2f} vs {full.psnr:.2f} dB "
                 f"(difference {fast.psnr - full.psnr:+.2f} dB)")
    known = mean_score(results, "textbook_true_airlight")
    brief_psnr, brief_delta_e = BRIEF_TRUE_AIRLIGHT
    lines.append(f"suite difficulty: textbook DCP given the true airlight scores {known.psnr:.2f} dB, dE00 "
                 f"{known.delta_e:.2f} (the design brief's suite: {brief_psnr} dB, dE00 {brief_delta_e})")
    return "\n".join(lines)
