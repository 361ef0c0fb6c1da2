"""`orbox dehaze eval|bench|run`: quality, speed and the video tool for the dehaze kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kernels.bench import RESOLUTIONS


@click.group()
def dehaze() -> None:
    """Laparoscopic smoke removal: evaluate, benchmark, or run on video."""


@dehaze.command("eval")
@click.option("--width", default=960, show_default=True, help="Scene width in pixels.")
@click.option("--height", default=540, show_default=True, help="Scene height in pixels.")
@click.option("--clips", "clips_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Score every video in DIR (real footage, no ground truth) instead of the suite.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), default=Path("dehaze-clips.png"),
              show_default=True, help="Contact sheet written by --clips (input | output | correction per frame).")
@click.option("--local-plume", is_flag=True, help="Score the synthetic local-plume clips against issue 17's targets.")
@click.option("--clip-size", default="1920x1080", show_default=True, help="WxH of the --local-plume clips.")
@click.option("--seed", "seeds", multiple=True, type=int, default=(17,), show_default=True,
              help="Seed of the --local-plume clips (repeat for several: held-out scenes).")
def eval_command(width: int, height: int, clips_dir: Path | None, sheet: Path, local_plume: bool,
                 clip_size: str, seeds: tuple[int, ...]) -> None:
    """Score hazy input, textbook DCP and orbox on the seeded synthetic smoke suite (or on clips)."""
    from kernels.dehazer import Dehazer

    if clips_dir is not None:
        from kernels.clips import evaluate_real_clips, format_real_reports

        with click.progressbar(length=len(list(clips_dir.iterdir())), label="scoring clips", file=sys.stderr) as bar:
            reports = evaluate_real_clips(clips_dir, sheet, Dehazer, progress=lambda _: bar.update(1))
        if not reports:
            raise click.ClickException(f"{clips_dir}: no readable video (.avi/.mp4/.mkv/.mov)")
        click.echo(format_real_reports(reports))
        click.echo(f"contact sheet: {sheet}")
    if local_plume:
        from kernels.clips import format_clip_scores, local_plume_clips, score_clip

        clip_width, clip_height = parse_size(clip_size, "--clip-size")
        for seed in seeds:
            clips = local_plume_clips(clip_width, clip_height, seed)
            with click.progressbar(length=len(clips), label=f"scoring local-plume clips, seed {seed}",
                                   file=sys.stderr) as bar:
                scores = []
                for clip in clips:
                    scores.append(score_clip(clip, Dehazer))
                    bar.update(1)
            click.echo(f"seed {seed}, {clip_width}x{clip_height}:")
            click.echo(format_clip_scores(scores))
    if clips_dir is None and not local_plume:
        _eval_suite(width, height)


def _eval_suite(width: int, height: int) -> None:
    from kernels.quality import FLICKER_LIMIT, do_no_harm, evaluate, flicker, format_table
    from kernels.synthetic import clean_suite, standard_suite

    scenes = standard_suite(width, height)
    with click.progressbar(length=len(scenes), label="scoring scenes", file=sys.stderr) as bar:
        results = evaluate(scenes, progress=lambda _: bar.update(1))
    click.echo(format_table(results))
    harm = do_no_harm(clean_suite(width, height))
    click.echo("\ndo-no-harm on smoke-free frames (PSNR of output vs input, target >= 40 dB):")
    for name, value in harm.items():
        click.echo(f"  {name:<20} {value:.2f} dB")
    pumping = flicker()
    click.echo(f"\nflicker on a static smoky scene (std of mean level, 8-bit codes, limit {FLICKER_LIMIT}): "
               f"orbox {pumping['output']:.3f}, input {pumping['input']:.3f}")


@dehaze.command("bench")
@click.option("--resolution", "resolutions", multiple=True, type=click.Choice(sorted(RESOLUTIONS)),
              default=("720p", "1080p", "4k"), show_default=True)
@click.option("--format", "formats", multiple=True, type=click.Choice(["rgb24", "nv12"]),
              default=("rgb24", "nv12"), show_default=True)
@click.option("--threads", "threads", multiple=True, type=click.IntRange(1, 64), default=(1, 2), show_default=True)
@click.option("--repeats", default=200, show_default=True, type=click.IntRange(5, 100000),
              help="Timed frames per case.")
def bench_command(resolutions: tuple[str, ...], formats: tuple[str, ...], threads: tuple[int, ...],
                  repeats: int) -> None:
    """p50/p99 ms per frame beside a memcpy and the OpenCV (ximgproc) baseline."""
    from kernels.bench import format_bench, run_bench

    cases = len(resolutions) * (len(formats) * len(threads) + 1)
    with click.progressbar(length=cases, label="benchmarking", file=sys.stderr) as bar:
        rows = run_bench(list(resolutions), list(formats), list(threads), repeats, progress=lambda _: bar.update(1))
    click.echo(format_bench(rows))


@dehaze.command("run")
@click.option("--input", "source", help="Video file or /dev/videoN.")
@click.option("--synthetic", is_flag=True, help="Generate a smoky clip instead of reading --input.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .mp4/.avi.")
@click.option("--side-by-side", is_flag=True, help="Write input and output next to each other.")
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--frames", default=90, show_default=True, type=click.IntRange(1, 100000),
              help="Length of the --synthetic clip.")
@click.option("--size", default="1280x720", show_default=True, help="WxH of the --synthetic clip.")
def run_command(source: str | None, synthetic: bool, output: Path, side_by_side: bool, strength: float,
                frames: int, size: str) -> None:
    """Dehaze a video and print a latency summary."""
    from kernels.video import VideoError, dehaze_video, open_source, read_frames, synthetic_frames

    if synthetic == (source is not None):
        raise click.UsageError("give exactly one of --input FILE|/dev/videoN or --synthetic")
    try:
        if synthetic:
            width, height = parse_size(size, "--size")
            fps, total = 30.0, frames
            stream = synthetic_frames(width, height, frames, fps)
            capture = None
        else:
            capture, width, height, fps, total = open_source(source)
            stream = read_frames(capture)
        with click.progressbar(length=total or None, label="dehazing", file=sys.stderr) as bar:
            summary = dehaze_video(stream, width, height, fps, output, strength=strength,
                                   side_by_side=side_by_side, on_frame=lambda: bar.update(1))
    except (VideoError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if not synthetic and "capture" in locals() and capture is not None:
            capture.release()
    click.echo(f"wrote {summary.output} ({summary.frames} frames, {width}x{height})")
    click.echo(f"kernel latency per frame: p50 {summary.p50_ms:.2f} ms, p99 {summary.p99_ms:.2f} ms, "
               f"max {summary.max_ms:.2f} ms")


def parse_size(size: str, option: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter(f"expected WxH such as 1280x720, got {size!r}", param_hint=option) from exc
    return width, height
