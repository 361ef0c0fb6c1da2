"""Reference implementations the kernel is measured against (never used on the box).

- `textbook_dcp`: He, Sun & Tang 2009 as published (patch 15, omega 0.95, t0 0.1, arg-max
  airlight among the haziest 0.1 %, full-resolution guided filter), in NumPy. Quality baseline;
  given the true airlight, it also measures how hard a suite is for the prior itself.
- `opencv_dehaze`: orbox's own algorithm written the straightforward way with OpenCV at full
  resolution (cv2.erode, cv2.ximgproc.guidedFilter, float32 NumPy recovery). Speed baseline.
- `full_filter_twin`: the kernel's own estimates (airlight, grid transmission, strength) refined
  by a full-resolution guided filter instead of the fast one, to measure what the fast filter costs.
"""

from __future__ import annotations

import cv2
import numpy as np

from kernels.colour import LUMA_WEIGHTS
from kernels.dehazer import Dehazer, Tuning, airlight_towards_grey, resolve_subsample


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He 2010 guided filter with a grey guide, at full resolution (6 box filters)."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _dark_channel(image: np.ndarray, patch: int) -> np.ndarray:
    # Chained np.minimum: I.min(axis=2) is 25x slower on HxWx3 (docs/dehaze.md#speed-references).
    per_pixel = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
    return cv2.erode(per_pixel, np.ones((patch, patch), np.uint8))


def textbook_dcp(frame: np.ndarray, patch: int = 15, omega: float = 0.95, t0: float = 0.1,
                 radius: int = 60, eps: float = 1e-3, airlight: np.ndarray | None = None) -> np.ndarray:
    """He et al. 2009 dark channel prior with guided-filter refinement, uint8 RGB in and out.

    `airlight` (RGB, 0..1) replaces the estimate: with a scene's true A this measures what the
    prior itself costs, the figure the design brief quotes for its suite (25.8 dB, dE00 2.2;
    docs/dehaze.md#baselines).
    """
    image = frame.astype(np.float32) / 255.0
    if airlight is None:
        dark = _dark_channel(image, patch)
        count = max(1, dark.size // 1000)
        candidates = np.argpartition(dark.ravel(), -count)[-count:]
        brightest = candidates[np.argmax(image.reshape(-1, 3)[candidates].sum(axis=1))]
        airlight = image.reshape(-1, 3)[brightest]
    airlight = np.maximum(np.asarray(airlight, np.float32), 1e-3)
    t_raw = 1.0 - omega * _dark_channel(image / airlight, patch)
    t = guided_filter(image @ LUMA_WEIGHTS, t_raw, radius, eps)
    t = np.maximum(t, t0)[..., None]
    return np.clip(((image - airlight) / t + airlight) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def opencv_dehaze(frame: np.ndarray, tuning: Tuning | None = None) -> np.ndarray:
    """orbox's algorithm (one frame, no temporal state) written with plain OpenCV + NumPy."""
    tune = resolve_subsample(tuning or Tuning(), frame.shape[1])
    image = frame.astype(np.float32)
    luma = image @ (LUMA_WEIGHTS / 255.0)
    view = cv2.erode((luma > tune.vignette_luma).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    patch = (2 * tune.dark_radius + 1) * tune.subsample
    raw_dark = _dark_channel(image, patch)
    usable = view & (image.max(axis=2) < tune.saturation)
    if not usable.any():
        return frame.copy()
    votes = raw_dark[usable]
    threshold = np.quantile(votes, 1.0 - tune.airlight_top)
    airlight = image[usable][votes >= threshold].mean(axis=0)
    airlight = np.clip(airlight_towards_grey(airlight, tune.grey_pull), 64.0, 255.0)
    dark = _dark_channel(image / airlight, patch)
    smoke = float(np.quantile(dark[view], tune.veil_quantile))
    u = np.clip((smoke - tune.gate_low) / (tune.gate_high - tune.gate_low), 0.0, 1.0)
    effect = u * u * (3.0 - 2.0 * u)
    if effect <= 0.0:
        return frame.copy()
    t_raw = np.where(view, 1.0 - tune.omega * dark, 1.0).astype(np.float32)
    t = cv2.ximgproc.guidedFilter(luma, t_raw, tune.gf_radius * tune.subsample, tune.gf_eps)
    t = np.clip(1.0 - effect * (1.0 - t), tune.t0, 1.0)[..., None]
    out = np.clip((image - airlight) / t + airlight + 0.5, 0, 255).astype(np.uint8)
    out[~view] = frame[~view]
    return out


def full_filter_twin(frame: np.ndarray, dehazer: Dehazer) -> np.ndarray:
    """Redo the recovery of the frame `dehazer` just processed with a full-resolution guided filter.

    The kernel's grid transmission is expanded to full resolution (each s x s block keeps its
    value, exactly what a block-aligned full-resolution dark channel gives) and filtered with
    radius gf_radius * s and the same eps; airlight, strength and vignette are the kernel's.
    """
    tune, s = dehazer.tuning, dehazer.tuning.subsample
    stats = dehazer.stats
    image = frame.astype(np.float32)
    if stats["gated"]:
        return frame.copy()
    height, width = frame.shape[:2]
    grid_t = dehazer.transmission_grid()
    t_raw = np.repeat(np.repeat(grid_t, s, axis=0), s, axis=1)[:height, :width]
    luma = image @ (LUMA_WEIGHTS / 255.0)
    t = guided_filter(luma, t_raw, tune.gf_radius * s, tune.gf_eps)
    effect = stats["strength_applied"]
    t = np.clip(1.0 - effect * (1.0 - t), tune.t0, 1.0)[..., None]
    airlight = np.array(stats["airlight"], np.float32) * 255.0
    out = np.clip((image - airlight) / t + airlight + 0.5, 0, 255).astype(np.uint8)
    cx, cy, r = stats["disc"]
    if r > 0:
        yy, xx = np.mgrid[0:height, 0:width]
        outside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 >= r * r
        out[outside] = frame[outside]
    return out
