"""Speed benchmark: p50/p99 ms per frame of the kernel beside a memcpy and the OpenCV baseline.

All three run on the same frames in the same process, so the ratios are fair even on a busy
machine. `orbox dehaze bench` prints `run_bench()`'s table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.colour import rgb_to_nv12
from kernels.dehazer import Dehazer
from kernels.reference import opencv_dehaze
from kernels.synthetic import compose, procedural_tissue, scope_vignette, smoke_airlight, smoke_transmission

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


@dataclass(frozen=True)
class Timing:
    label: str
    p50: float
    p99: float


def smoky_frame(width: int, height: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scene = procedural_tissue(height, width, rng)
    t = smoke_transmission("patchy", height, width, rng, 0.6)
    return compose(scene, t, smoke_airlight(rng), scope_vignette(height, width, rng), rng)


def time_calls(label: str, call: Callable[[], object], repeats: int, warmup: int = 3) -> Timing:
    for _ in range(warmup):
        call()
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        samples[i] = (time.perf_counter() - start) * 1e3
    return Timing(label, float(np.percentile(samples, 50)), float(np.percentile(samples, 99)))


def run_bench(resolutions: list[str], formats: list[str], threads: list[int], repeats: int = 200,
              baseline_repeats: int = 10, progress: Callable[[str], None] | None = None) -> list[Timing]:
    rows: list[Timing] = []
    for res in resolutions:
        width, height = RESOLUTIONS[res]
        rgb = smoky_frame(width, height)
        copy_dst = np.empty_like(rgb)
        rows.append(time_calls(f"{res} memcpy (rgb24)", lambda d=copy_dst, f=rgb: np.copyto(d, f), repeats))
        for fmt in formats:
            frame = rgb_to_nv12(rgb) if fmt == "nv12" else rgb
            out = np.empty_like(frame)
            for n in threads:
                if progress:
                    progress(f"{res} {fmt} threads={n}")
                dehazer = Dehazer(width, height, fmt, threads=n)
                rows.append(time_calls(f"{res} orbox {fmt} threads={n}",
                                       lambda d=dehazer, f=frame, o=out: d.process(f, out=o), repeats))
        if progress:
            progress(f"{res} opencv baseline")
        rows.append(time_calls(f"{res} opencv+ximgproc rgb24", lambda f=rgb: opencv_dehaze(f), baseline_repeats, 1))
    return rows


def format_bench(rows: list[Timing]) -> str:
    lines = [f"{'case':<34}{'p50 ms':>9}{'p99 ms':>9}{'vs opencv':>11}"]
    baselines = {r.label.split()[0]: r.p50 for r in rows if "opencv" in r.label}
    for row in rows:
        base = baselines.get(row.label.split()[0])
        ratio = f"{base / row.p50:>10.1f}x" if base and "orbox" in row.label else ""
        lines.append(f"{row.label:<34}{row.p50:>9.2f}{row.p99:>9.2f}{ratio:>11}")
    return "\n".join(lines)
