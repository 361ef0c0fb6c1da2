"""Seeded synthetic laparoscopic smoke: clean frames, smoke fields, composition.

There is no public smoke dataset with ground truth, so quality is measured on frames built from
the haze model itself, I = J * t + A * (1 - t) (docs/dehaze.md#haze-model). Clean frames are
either scikit-image's bundled photos tinted towards tissue or procedural tissue with vessels,
instruments, speculars and the scope's black vignette. Everything is a pure function of a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from kernels.colour import nv12_to_rgb, rgb_to_nv12

TISSUE_TINT = np.array([1.0, 0.55, 0.45], dtype=np.float32)
BUNDLED_IMAGES = ("coffee", "astronaut", "chelsea", "rocket")


@dataclass(frozen=True)
class Scene:
    """One test case. Images are float32 RGB in 0..1 except `hazy`, the uint8 sensor frame."""

    name: str
    clean: np.ndarray        # J * vignette, the ground truth the kernel should recover
    hazy: np.ndarray         # uint8 HxWx3: what the camera delivers
    metric_mask: np.ndarray  # bool HxW: fully inside the scope disc, where scores are taken
    view_mask: np.ndarray    # float32 HxW in 0..1: the optical vignette
    airlight: np.ndarray     # the true A
    transmission: np.ndarray  # the true t


def lowpass_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random field in 0..1 with features about `scale` pixels wide."""
    small = rng.random((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2))).astype(np.float32)
    field = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    field = cv2.GaussianBlur(field, (0, 0), scale / 3.0)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def scope_vignette(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Soft-edged bright disc of the laparoscope's optics; 0 outside (pure black)."""
    radius = min(height, width) * rng.uniform(0.47, 0.56)
    cy = height / 2 + rng.uniform(-0.03, 0.03) * height
    cx = width / 2 + rng.uniform(-0.03, 0.03) * width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.sqrt((yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2)
    edge = max(2.0, radius * 0.03)
    return np.clip((radius - dist) / edge, 0.0, 1.0).astype(np.float32)


def tinted_photo(name: str, height: int, width: int) -> np.ndarray:
    """A scikit-image bundled photo, resized and tinted towards tissue (R x1, G x0.55, B x0.45)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return np.clip(image * TISSUE_TINT, 0.0, 1.0)


def draw_instrument(image: np.ndarray, entry: np.ndarray, tip: np.ndarray, shaft: int,
                    gloss: np.ndarray) -> np.ndarray:
    """`image` with a grey metal shaft from `entry` to `tip` (pixel (x, y)); `gloss` is its HxW brightness."""
    height, width = image.shape[:2]
    instrument = np.zeros((height, width), np.float32)
    cv2.line(instrument, tuple(int(v) for v in entry), tuple(int(v) for v in tip), 1.0, shaft, cv2.LINE_AA)
    metal = np.stack([gloss, gloss, gloss * 1.03], axis=-1)
    return image * (1 - instrument[..., None]) + metal * instrument[..., None]


def procedural_tissue(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Mucosa with texture, vessels, a metal instrument and specular highlights (RGB 0..1)."""
    base = np.array([0.80, 0.34, 0.28], dtype=np.float32) * rng.uniform(0.85, 1.05)
    shade = 0.55 + 0.45 * lowpass_noise(rng, height, width, min(height, width) / 3)
    texture = 0.85 + 0.15 * lowpass_noise(rng, height, width, 6.0)
    image = base[None, None, :] * (shade * texture)[..., None]

    vessels = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(6, 12))):
        points = [rng.uniform([0, 0], [width, height])]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(12):
            heading += rng.normal(0, 0.45)
            step = rng.uniform(0.03, 0.08) * width
            points.append(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
        thickness = int(rng.integers(2, 9))
        cv2.polylines(vessels, [np.array(points, np.int32)], False, 1.0, thickness, cv2.LINE_AA)
    vessels = cv2.GaussianBlur(vessels, (0, 0), 1.2)
    vessel_colour = np.array([0.45, 0.06, 0.08], np.float32)
    image = image * (1 - 0.8 * vessels[..., None]) + vessel_colour * (0.8 * vessels[..., None]) * shade[..., None]

    tip = rng.uniform([0.35 * width, 0.35 * height], [0.65 * width, 0.65 * height])
    entry = np.array([width * rng.choice([0.0, 1.0]), height * rng.uniform(0.0, 1.0)])
    shaft = max(6, int(0.07 * min(height, width)))
    gloss = 0.45 + 0.35 * lowpass_noise(rng, height, width, shaft)
    image = draw_instrument(image, entry, tip, shaft, gloss)

    speculars = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(8, 20))):
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.integers(2, 10)), int(rng.integers(1, 5)))
        cv2.ellipse(speculars, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    speculars = cv2.GaussianBlur(speculars, (0, 0), 1.5)
    image = image + (1.0 - image) * np.clip(speculars, 0, 1)[..., None]
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def smoke_transmission(kind: str, height: int, width: int, rng: np.random.Generator,
                       level: float = 0.5) -> np.ndarray:
    """Transmission map t in (0, 1]: 'none', 'homogeneous', 'patchy' (low-pass noise) or 'plume'."""
    if kind == "none":
        return np.ones((height, width), np.float32)
    if kind == "homogeneous":
        return np.full((height, width), level, np.float32)
    if kind == "patchy":
        field = lowpass_noise(rng, height, width, min(height, width) / 4)
        return (level - 0.2 + 0.45 * field).clip(0.15, 1.0).astype(np.float32)
    if kind == "plume":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        sx, sy = rng.uniform(0.25, 0.45) * width, rng.uniform(0.25, 0.45) * height
        blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        wisps = lowpass_noise(rng, height, width, min(height, width) / 8)
        density = (1.0 - level) * blob * (0.7 + 0.6 * wisps) + 0.15 * (1.0 - level)
        return (1.0 - density).clip(0.15, 1.0).astype(np.float32)
    raise ValueError(f"smoke kind must be one of none, homogeneous, patchy, plume; got {kind!r}")


def smoke_airlight(rng: np.random.Generator) -> np.ndarray:
    """Grey-white smoke colour, 0.7..0.95, with a slight random tint."""
    return (rng.uniform(0.7, 0.95) * (1.0 + rng.normal(0.0, 0.025, 3))).clip(0.0, 1.0).astype(np.float32)


def compose(clean_scene: np.ndarray, transmission: np.ndarray, airlight: np.ndarray, view: np.ndarray,
            rng: np.random.Generator, noise_sigma: float = 1.5 / 255, nv12_round_trip: bool = False) -> np.ndarray:
    """Camera frame: haze model inside the optics, vignette, sensor noise, 8-bit quantisation."""
    t = transmission[..., None]
    hazy = (clean_scene * t + airlight * (1.0 - t)) * view[..., None]
    hazy = hazy + rng.normal(0.0, noise_sigma, hazy.shape).astype(np.float32) * view[..., None]
    frame = np.clip(np.rint(hazy * 255.0), 0, 255).astype(np.uint8)
    if nv12_round_trip:
        frame = nv12_to_rgb(rgb_to_nv12(frame))
    return frame


def make_scene(name: str, source: str, smoke: str, *, seed: int, width: int = 960, height: int = 540,
               level: float = 0.5, nv12_round_trip: bool = False) -> Scene:
    """Build one scene. `source` is a bundled image name or 'procedural'."""
    rng = np.random.default_rng(seed)
    scene = procedural_tissue(height, width, rng) if source == "procedural" else tinted_photo(source, height, width)
    view = scope_vignette(height, width, rng)
    transmission = smoke_transmission(smoke, height, width, rng, level)
    airlight = smoke_airlight(rng)
    hazy = compose(scene, transmission, airlight, view, rng, nv12_round_trip=nv12_round_trip)
    inner = cv2.erode((view >= 1.0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return Scene(name, scene * view[..., None], hazy, inner, view, airlight, transmission)


STANDARD_SUITE = (
    # name, source, smoke, level, nv12 round trip
    ("coffee-homog", "coffee", "homogeneous", 0.60, False),
    ("astronaut-patchy", "astronaut", "patchy", 0.60, False),
    ("chelsea-plume", "chelsea", "plume", 0.50, False),
    ("rocket-homog-nv12", "rocket", "homogeneous", 0.65, True),
    ("tissue-homog", "procedural", "homogeneous", 0.60, False),
    ("tissue-patchy", "procedural", "patchy", 0.60, False),
    ("tissue-plume-nv12", "procedural", "plume", 0.50, True),
    ("tissue-dense", "procedural", "homogeneous", 0.45, False),
)
CLEAN_SUITE = (
    ("coffee-clean", "coffee", "none", 1.0, False),
    ("tissue-clean", "procedural", "none", 1.0, False),
    ("tissue-clean-2", "procedural", "none", 1.0, False),
)


def standard_suite(width: int = 960, height: int = 540, seed: int = 2026) -> list[Scene]:
    """The smoky scenes behind the quality targets (PSNR, SSIM, CIEDE2000)."""
    return [make_scene(n, src, smoke, seed=seed + i, width=width, height=height, level=lv, nv12_round_trip=rt)
            for i, (n, src, smoke, lv, rt) in enumerate(STANDARD_SUITE)]


def clean_suite(width: int = 960, height: int = 540, seed: int = 7000) -> list[Scene]:
    """Smoke-free scenes for the do-no-harm check."""
    return [make_scene(n, src, smoke, seed=seed + i, width=width, height=height, level=lv, nv12_round_trip=rt)
            for i, (n, src, smoke, lv, rt) in enumerate(CLEAN_SUITE)]


def smoky_clip(width: int, height: int, frames: int, *, seed: int = 1, fps: float = 30.0) -> Iterator[np.ndarray]:
    """A procedural smoky clip (uint8 RGB frames): a plume that builds up, drifts and clears.

    Used by `orbox dehaze run --synthetic` and the appliance's synthetic video source.
    """
    rng = np.random.default_rng(seed)
    scene = procedural_tissue(height, width, rng)
    view = scope_vignette(height, width, rng)
    airlight = smoke_airlight(rng)
    puffs = lowpass_noise(rng, height, width * 2, min(height, width) / 5)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(frames):
        phase = index / max(frames - 1, 1)
        density = 0.75 * np.sin(np.pi * phase) ** 2
        shift = int(index * width / (4 * fps)) % width
        field = puffs[:, shift:shift + width]
        centre_x = width * (0.3 + 0.4 * phase)
        blob = np.exp(-(((xx - centre_x) / (0.5 * width)) ** 2 + ((yy - height / 2) / (0.6 * height)) ** 2))
        t = (1.0 - density * (0.5 * blob + 0.5 * field)).clip(0.15, 1.0)
        yield compose(scene, t, airlight, view, rng)
