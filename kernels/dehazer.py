"""`Dehazer`: laparoscopic smoke removal for one video stream.

Dark channel prior (He et al. 2009) with the fast guided filter (He & Sun 2015), adapted to
laparoscopy (see docs/dehaze.md):

- the airlight is voted for by the haziest usable cells (speculars, instruments and the black
  vignette excluded), averaged over a quantile instead of an arg-max, made grey at the level of
  its brightest channel (surgical smoke is nearly achromatic, red tissue is not) and smoothed
  over time;
- a smoke level (the haze veil over the clearest part of the view) gates the correction, so a
  smoke-free frame passes through untouched; `strength` scales what remains;
- pixels outside the scope's disc are never modified and never enter a statistic;
- a local veil (a plume at an instrument tip in an otherwise clear view, which never opens the
  whole-frame gate) is measured per grid cell against that cell's clear reference from earlier
  frames; the two transmissions combine as their minimum. Only statistics come from earlier
  frames: every output pixel is computed from the current frame.

The object owns every buffer it needs, sized at construction, so steady-state frames allocate
nothing when `out` is given. It is stateful (temporal smoothing): use one per stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from kernels import _dehaze
from kernels.colour import rgb_to_yuv_codes

PIXEL_FORMATS = ("rgb24", "bgr24", "nv12")
MIN_SIZE = 16


@dataclass(frozen=True)
class Tuning:
    """Algorithm constants. Defaults were chosen on the synthetic suite (`orbox dehaze eval`)."""

    subsample: int = 0            # grid step s of the fast guided filter and statistics; 0 = auto
    dark_radius: int = 2          # erosion radius on the grid: a (2r+1)*s = 20 px patch
    omega: float = 0.87           # fraction of haze removed (tissue breaks the prior: keep some)
    t0: float = 0.15              # transmission floor: 1/t0 bounds the noise gain on video
    gf_radius: int = 12           # guided-filter radius on the grid (48 px at s=4)
    gf_eps: float = 1e-3          # guided-filter regulariser, in luma^2 (0..1 scale)
    airlight_top: float = 0.002   # fraction of usable cells that vote for the airlight
    saturation: float = 235.0     # cells whose brightest mean channel reaches this cannot vote
    grey_pull: float = 1.0        # fraction of the airlight's chroma removed (smoke is near grey)
    temporal_alpha: float = 0.15  # EMA weight of the newest frame for airlight and smoke level
    veil_quantile: float = 0.05   # smoke level = this quantile of the dark channel inside the disc
    gate_low: float = 0.14        # smoke level at which correction starts ...
    gate_high: float = 0.18       # ... and at which it reaches full strength
    vignette_luma: float = 0.06   # cells darker than this (mean luma 0..1) are vignette
    disc_margin: float = 3.0      # grid cells kept clear of the disc's soft edge in the statistics
    local_veil: int = 1           # 1: also clear local veils per grid cell (docs/dehaze.md#local-veil); 0: off
    veil_t_min: float = 0.25      # lowest local t: an opaque object fits a veil only with t ~ 0
    veil_t_clear: float = 0.95    # a cell whose local t reaches this is clear
    veil_tolerance: float = 4.0   # veil-model residual allowed per cell, codes ...
    veil_tolerance_rel: float = 0.08  # ... plus this share of the cell's change
    veil_chroma: float = 12.0     # reference channel spread (codes) a cell needs to show a veil on its own
    veil_margin: float = 5.0      # a cell votes for the local airlight only if it is this far below it
    veil_tint: float = 0.08       # bound on the local airlight's tint, a share of its grey level
    veil_follow: float = 0.25     # rate at which a clear cell's reference follows the scene
    veil_attack: float = 0.6      # per-cell gate rate when smoke appears ...
    veil_release: float = 0.15    # ... and when it goes
    veil_grow: int = 6            # cells the smoke mask may grow into grey cells that fit the veil
    veil_cut: float = 0.5         # share of cells whose reference is replaced in one frame: a scene cut
    veil_still: float = 1.0       # a cell whose channels all moved less than this (codes) is unchanged

    def validated(self) -> Tuning:
        checks = {
            "subsample": self.subsample == 0 or (2 <= self.subsample <= 16 and self.subsample % 2 == 0),
            "dark_radius": 0 <= self.dark_radius <= 32,
            "omega": 0.0 < self.omega <= 1.0,
            "t0": 0.01 <= self.t0 < 1.0,
            "gf_radius": 1 <= self.gf_radius <= 256,
            "gf_eps": self.gf_eps > 0.0,
            "airlight_top": 0.0 < self.airlight_top <= 0.5,
            "saturation": 1.0 <= self.saturation <= 255.0,
            "grey_pull": 0.0 <= self.grey_pull <= 1.0,
            "temporal_alpha": 0.0 < self.temporal_alpha <= 1.0,
            "veil_quantile": 0.0 < self.veil_quantile < 1.0,
            "gate_low": 0.0 <= self.gate_low < self.gate_high,
            "gate_high": self.gate_high <= 1.0,
            "vignette_luma": 0.0 <= self.vignette_luma < 1.0,
            "disc_margin": 0.0 <= self.disc_margin <= 64.0,
            "local_veil": self.local_veil in (0, 1),
            "veil_t_min": 0.0 < self.veil_t_min < self.veil_t_clear,
            "veil_t_clear": self.veil_t_clear < 1.0,
            "veil_tolerance": self.veil_tolerance >= 0.0,
            "veil_tolerance_rel": 0.0 <= self.veil_tolerance_rel < 1.0,
            "veil_chroma": self.veil_chroma >= 0.0,
            "veil_margin": self.veil_margin >= 0.0,
            "veil_tint": 0.0 <= self.veil_tint <= 0.5,
            "veil_follow": 0.0 < self.veil_follow <= 1.0,
            "veil_attack": 0.0 < self.veil_attack <= 1.0,
            "veil_release": 0.0 < self.veil_release <= 1.0,
            "veil_grow": 0 <= self.veil_grow <= 64,
            "veil_cut": 0.0 < self.veil_cut <= 1.0,
            "veil_still": 0.0 <= self.veil_still <= self.veil_tolerance,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"tuning parameter {name!r} is out of range: got {getattr(self, name)!r}")
        return self


AUTO_GRID_WIDTH = 1024  # widest frame a grid step of 4 pixels serves
VEIL_AIRLIGHT_ALPHA = 0.5  # weight of each frame's least-squares step of the local airlight


def resolve_subsample(tuning: Tuning, width: int) -> Tuning:
    """Fix an automatic grid step: 4 up to 1024 px wide, 8 above (720p, 1080p, 4K).

    The dark-channel patch and guided-filter window are counted in grid cells, and the constants
    were tuned at 960 px with s = 4; a larger step on larger frames keeps them covering a similar
    share of the view and bounds the grid-level work. Measured on the suite at 1080p: s = 8 scores
    25.16 dB against 25.12 for s = 4. At 4K, s = 16 lost up to 0.8 dB on a scene, so 8 is the cap.
    """
    if tuning.subsample:
        return tuning
    return replace(tuning, subsample=4 if width <= AUTO_GRID_WIDTH else 8)


def make_tuning(overrides: dict[str, Any]) -> Tuning:
    known = {f.name: f.type for f in fields(Tuning)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(f"unknown tuning parameter(s) {unknown}; expected some of {sorted(known)}")
    base = Tuning()
    typed = {}
    for name, value in overrides.items():
        kind = type(getattr(base, name))
        wrong_kind = kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
            raise TypeError(f"tuning parameter {name!r} must be {kind.__name__}, got {type(value).__name__}")
        typed[name] = kind(value)
    return replace(base, **typed).validated()


def airlight_towards_grey(colour: np.ndarray, grey_pull: float) -> np.ndarray:
    """Smoke colour from the haziest cells' mean colour: grey at the level of its brightest channel.

    Those cells are I = t*J + (1-t)*A with t well above 0 when the smoke is not dense, so their
    colour is A mixed with the scene. Smoke adds the same grey level to every channel, while tissue
    is bright in red and dark in green and blue: the channel mean is pulled far below A (on the
    suite, 0.69 for a true 0.90), the brightest channel much less. `grey_pull` removes that
    fraction of the remaining chroma (1.0: pure grey).
    """
    return colour.max() + (1.0 - grey_pull) * (colour - colour.mean())


def _smoothstep(lo: float, hi: float, x: float) -> float:
    u = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


class Dehazer:
    """Stateful per-stream smoke remover. See the module docstring for the method."""

    def __init__(self, width: int, height: int, pixel_format: str = "rgb24", *, strength: float = 1.0,
                 threads: int = 1, **tuning: Any) -> None:
        for name, value in (("width", width), ("height", height), ("threads", threads)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}")
        if width < MIN_SIZE or height < MIN_SIZE:
            raise ValueError(f"frame size must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")
        if pixel_format == "nv12" and (width % 2 or height % 2):
            raise ValueError(f"nv12 needs an even width and height, got {width}x{height}")
        if not 1 <= threads <= 64:
            raise ValueError(f"threads must be in 1..64, got {threads}")
        self.width, self.height, self.pixel_format, self.threads = int(width), int(height), pixel_format, int(threads)
        self.strength = strength
        self.tuning = resolve_subsample(make_tuning(tuning), width)
        self.frame_shape = (height * 3 // 2, width) if pixel_format == "nv12" else (height, width, 3)
        self._channels = (2, 1, 0) if pixel_format == "bgr24" else (0, 1, 2)
        self._allocate()
        self.reset()

    # ---------------------------------------------------------------- public API

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ValueError(f"strength must be a number in 0..1, got {value!r}")
        self._strength = float(value)

    def reset(self) -> None:
        """Forget the temporal state (airlight, smoke level, scope disc, local veil): call on a scene cut.

        The local veil's state also resets itself when most cells change at once (a cut the caller
        did not signal).
        """
        self._airlight: np.ndarray | None = None
        self._smoke: float | None = None
        self._disc: tuple[float, float, float] | None = None
        self._reset_local_veil()
        self.stats: dict[str, Any] = {}

    def _reset_local_veil(self) -> None:
        self._references_valid = False
        self._open_gate = 0.0
        self._gate.fill(0.0)
        self._held.fill(1.0)
        self._flags.fill(0)
        self._veil_airlight.fill(0.0)  # index 3 = 0: no local airlight known

    def process(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Dehaze one frame; returns `out` (a new array when None). `out=frame` works in place."""
        self._check_frame(frame, "frame")
        if out is None:
            out = np.empty_like(frame)
        else:
            self._check_frame(out, "out")
            if not out.flags.writeable:
                raise ValueError("out must be writeable, got a read-only array")
        in_place = out.__array_interface__["data"][0] == frame.__array_interface__["data"][0]
        if not in_place and np.may_share_memory(out, frame):
            raise ValueError("out overlaps frame without being the same buffer; pass out=frame or a separate array")
        return self._run(frame, out, in_place)

    def transmission_grid(self) -> np.ndarray:
        """Copy of the last frame's unrefined transmission on the s-subsampled grid (for analysis)."""
        return self._t.copy()

    def correction_grid(self) -> np.ndarray:
        """The last frame's applied correction 1 - t' per grid cell (0: untouched), NaN outside the disc.

        t' is the refined, gated and strength-scaled transmission the recovery pass used at the
        cell's centre (for analysis: which cells were treated as smoky).
        """
        correction = np.zeros(self._luma.shape, np.float32)
        if self.stats and not self.stats["gated"]:
            refined = np.clip(self._a * self._luma + self._b, self.tuning.t0, 1.0)
            correction = (1.0 - refined).astype(np.float32)
        correction[self._inside == 0] = np.nan
        return correction

    # ---------------------------------------------------------------- internals

    def _allocate(self) -> None:
        s = self.tuning.subsample
        gh, gw = -(-self.height // s), -(-self.width // s)
        f32 = np.float32
        self._mean = np.zeros((gh, gw, 3), f32)
        self._mins = np.zeros((gh, gw, 3), f32)
        self._luma = np.zeros((gh, gw), f32)
        self._inside = np.zeros((gh, gw), np.uint8)
        self._votes = np.zeros((gh, gw), np.int16)
        self._dark = np.zeros((gh, gw), f32)
        self._eroded = np.zeros((gh, gw), f32)
        self._t = np.zeros((gh, gw), f32)
        self._coeffs = np.zeros((2, gh, gw), f32)  # guided-filter (a, b) on the grid
        self._a, self._b = self._coeffs
        self._work = np.zeros((12, gh, gw), f32)
        self._acc = np.zeros(gw, f32)
        self._hist = np.zeros(256, np.int64)
        # Local veil state per grid cell (kernels/_dehaze.pyx: local_veil).
        self._references = np.zeros((gh, gw, 3), f32)
        self._gate = np.zeros((gh, gw), f32)
        self._held = np.ones((gh, gw), f32)
        self._flags = np.zeros((gh, gw), np.uint8)
        self._local_fit = np.zeros((gh, gw), f32)
        self._local_t = np.ones((gh, gw), f32)
        self._masks = np.zeros((4, gh, gw), np.uint8)
        self._veil_airlight = np.zeros(4, np.float64)
        tune = self.tuning
        self._veil_params = np.array([tune.veil_t_min, tune.veil_t_clear, tune.veil_tolerance,
                                      tune.veil_tolerance_rel, tune.veil_chroma, tune.veil_margin, tune.veil_tint,
                                      tune.veil_follow, tune.veil_attack, tune.veil_release, VEIL_AIRLIGHT_ALPHA,
                                      tune.veil_still],
                                     np.float32)
        self._grid_rows = np.zeros(2 * self.threads, np.int32)
        self._rows = np.zeros((4 * self.threads, self.width), f32)
        if self.pixel_format == "nv12":
            self._gains = np.zeros((2 * self.threads, self.width), np.int16)
            self._pair_sum = np.zeros((self.threads, self.width), np.uint16)
            self._pair_min = np.zeros((self.threads, self.width), np.uint8)
            self._block_acc = np.zeros((self.threads, 3 * (self.width // 2) + 8 * gw), f32)
        else:
            self._vsum = np.zeros((self.threads, 3 * self.width), np.uint16)
            self._vmin = np.zeros((self.threads, 3 * self.width), np.uint8)

    def _check_frame(self, array: Any, name: str) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
        if array.dtype != np.uint8:
            raise TypeError(f"{name} must have dtype uint8, got {array.dtype}")
        if array.shape != self.frame_shape:
            layout = "(H*3/2, W)" if self.pixel_format == "nv12" else "(H, W, 3)"
            raise ValueError(f"{name} must have shape {self.frame_shape} {layout} for {self.pixel_format} "
                             f"{self.width}x{self.height}, got {array.shape}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous; got strides {array.strides} (use np.ascontiguousarray)")

    def _run(self, frame: np.ndarray, out: np.ndarray, in_place: bool) -> np.ndarray:
        tune, s, threads = self.tuning, self.tuning.subsample, self.threads
        clock = time.perf_counter
        t_begin = clock()
        src = frame.reshape(frame.shape[0], -1)
        dst = out.reshape(out.shape[0], -1)
        if self.pixel_format == "nv12":
            _dehaze.block_stats_nv12(src, s, self.height, self._mean, self._mins, self._luma, self._pair_sum,
                                     self._pair_min, self._block_acc, threads)
        else:
            _dehaze.block_stats_rgb(src, s, *self._channels, self._mean, self._mins, self._luma, self._vsum,
                                    self._vmin, threads)
        t_stats = clock()

        disc = self._find_disc()
        airlight = self._estimate_airlight()
        _dehaze.normalized_dark(self._mins, self._inside, *airlight, self._dark)
        _dehaze.min_filter(self._dark, tune.dark_radius, self._work[0], self._eroded)
        smoke = self._update_smoke_level()
        effect = self._strength * _smoothstep(tune.gate_low, tune.gate_high, smoke)
        mean_t = _dehaze.transmission(self._eroded, self._inside, tune.omega, self._t)
        t_estimate = clock()

        local = self._local_veil(disc) > 0.0
        t_local = clock()
        gated = (effect <= 0.0 and not local) or disc is None
        if local:
            # t' = min(1 - effect * (1 - t), local t) on the grid, then refined like the whole-frame t.
            combined = self._work[0]
            np.multiply(self._t, effect, out=combined)
            combined += 1.0 - effect
            np.minimum(self._local_t, combined, out=self._local_t)
            _dehaze.guided_coefficients(self._luma, self._local_t, tune.gf_radius, tune.gf_eps, self._work,
                                        self._acc, self._coeffs)
            if effect <= 0.0:  # a local veil in a clear view: the clear cells stay exactly as they are
                _dehaze.pin_clear_cells(self._gate, self._a, self._b)
                airlight = tuple(float(c) for c in self._veil_airlight[:3])
        elif not gated:
            _dehaze.guided_coefficients(self._luma, self._t, tune.gf_radius, tune.gf_eps, self._work,
                                        self._acc, self._coeffs)
            # Scale the correction by `effect`: t' = 1 - effect * (1 - t), folded into (a, b).
            self._a *= effect
            self._b *= effect
            self._b += 1.0 - effect
        t_filter = clock()

        if gated:
            if not in_place:
                np.copyto(out, frame)
        else:
            cx, cy, r = disc
            if self.pixel_format == "nv12":
                yuv = rgb_to_yuv_codes(airlight)  # NV12 is limited-range BT.709
                _dehaze.recover_nv12(src, dst, self.height, s, self._a, self._b, self._rows, self._grid_rows,
                                     self._gains, *yuv, tune.t0, cx, cy, r, in_place, threads)
            else:
                _dehaze.recover_rgb(src, dst, s, *self._channels, self._a, self._b, self._rows, self._grid_rows,
                                    *airlight, tune.t0, cx, cy, r, in_place, threads)
        t_end = clock()
        self.stats = {
            "airlight": tuple(c / 255.0 for c in airlight),
            "smoke_level": smoke,
            "strength_applied": 0.0 if gated else effect,
            "mean_transmission": 1.0 if gated else 1.0 - effect * (1.0 - mean_t),
            "gated": gated,
            "local_cells": self._local_cells,
            "scene_cut": self._scene_cut,
            "disc": disc,
            "timings_ms": {
                "stats": (t_stats - t_begin) * 1e3,
                "estimate": (t_estimate - t_stats) * 1e3,
                "local": (t_local - t_estimate) * 1e3,
                "filter": (t_filter - t_local) * 1e3,
                "recover": (t_end - t_filter) * 1e3,
                "total": (t_end - t_begin) * 1e3,
            },
        }
        return out

    def _local_veil(self, disc: tuple[float, float, float] | None) -> float:
        """Update the per-cell veil state; returns the largest cell gate (0: no local correction)."""
        tune = self.tuning
        self._local_cells, self._scene_cut = 0, False
        if not tune.local_veil or disc is None:
            return 0.0
        if not self._references_valid:
            np.copyto(self._references, self._mean)
            self._references_valid = True
        cells, replaced, inside, top = _dehaze.local_veil(
            self._mean, self._inside, self._references, self._gate, self._held, self._flags, self._local_fit,
            self._masks, self._veil_airlight, self._veil_params, self._strength, tune.t0, tune.veil_grow,
            self._local_t, self._open_gate)
        self._open_gate = top
        if inside and replaced > tune.veil_cut * inside:
            self._reset_local_veil()
            np.copyto(self._references, self._mean)
            self._references_valid, self._scene_cut = True, True
            return 0.0
        self._local_cells = cells
        return top if self._veil_airlight[3] > 0.0 and self._strength > 0.0 else 0.0

    def _find_disc(self) -> tuple[float, float, float] | None:
        """Scope disc in full-res pixels (r < 0: no vignette, whole frame), or None if all dark."""
        tune = self.tuning
        s = tune.subsample
        cx, cy, r, bright = _dehaze.disc_mask(self._luma, tune.vignette_luma, tune.disc_margin, self._inside)
        if r <= 0.0:
            return None
        if bright > 0.97:  # no vignette: the whole frame is the view
            self._inside.fill(1)
            found = (self.width / 2.0, self.height / 2.0, -1.0)
        else:
            found = (cx * s, cy * s, r * s)
        if self._disc is not None and (found[2] < 0) == (self._disc[2] < 0):
            alpha = tune.temporal_alpha
            found = tuple(old + alpha * (new - old) for old, new in zip(self._disc, found, strict=True))
        self._disc = found
        return found

    def _estimate_airlight(self) -> tuple[float, float, float]:
        tune = self.tuning
        _dehaze.airlight_votes(self._mean, self._mins, self._inside, tune.saturation, self._votes, self._hist)
        usable = int(self._hist.sum())
        estimate = None
        if usable:
            wanted = max(1, int(tune.airlight_top * usable))
            from_top = np.cumsum(self._hist[::-1])
            threshold = 255 - int(np.searchsorted(from_top, wanted))
            r, g, b, count = _dehaze.airlight_mean(self._mean, self._votes, threshold)
            if count:
                estimate = np.array([r, g, b], dtype=np.float64)
        if estimate is None:
            estimate = self._airlight if self._airlight is not None else np.full(3, 220.0)
        estimate = airlight_towards_grey(estimate, tune.grey_pull)
        estimate = np.clip(estimate, 64.0, 255.0)
        if self._airlight is not None:
            estimate = self._airlight + tune.temporal_alpha * (estimate - self._airlight)
        self._airlight = estimate
        return float(estimate[0]), float(estimate[1]), float(estimate[2])

    def _update_smoke_level(self) -> float:
        _dehaze.masked_histogram(self._eroded, self._inside, 255.0, self._hist)
        total = int(self._hist.sum())
        if total == 0:
            level = 0.0
        else:
            rank = self.tuning.veil_quantile * total
            level = float(np.searchsorted(np.cumsum(self._hist), rank)) / 255.0
        if self._smoke is not None:
            level = self._smoke + self.tuning.temporal_alpha * (level - self._smoke)
        self._smoke = level
        return level
