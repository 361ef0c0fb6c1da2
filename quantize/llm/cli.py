"""`orbox quantize llm` and `orbox quantize bench`: thin click shells over `publish` and `bench`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hw_profiles.gguf_types import FLOAT_TYPES, GGUF_TYPES


def _print_gates(gates: dict[str, Any]) -> None:
    for name, verdict in gates.items():
        entries = verdict.items() if "verdict" not in verdict else [(None, verdict)]
        for label, entry in entries:
            title = f"{name}[{label}]" if label else name
            click.echo(f"  {entry['verdict'].upper():4} {title}: {entry['metrics']}", err=True)
            for problem in entry["problems"]:
                click.echo(f"       - {problem}", err=True)


@click.command("llm")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="Local Hugging Face checkpoint directory (safetensors, config.json, tokenizer files).")
@click.option("--profile", required=True, help="Hardware profile name or TOML path (see `orbox profile list`).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model bundle directory; GGUF files go to llm/ and into manifest.json.")
@click.option("--types", default=None, help=f"Comma-separated types ({','.join(GGUF_TYPES)}); "
              "default: the profile planner's choice.")
@click.option("--context", type=click.IntRange(min=1), default=None, help="Context length for the planner.")
@click.option("--sign-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ed25519 private key (PEM PKCS#8) to sign manifest.json.")
@click.option("--thresholds", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file overriding gate thresholds (kld_max, top1_min, converter_max_rel_error, ...).")
@click.option("--eval-text", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="UTF-8 text for the KLD gate (default: the bundled clinical corpus).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
def llm(model_dir: Path, profile: str, out_dir: Path, types: str | None, context: int | None,
        sign_key: Path | None, thresholds: Path | None, eval_text: Path | None, threads: int) -> None:
    """Convert a HF checkpoint to GGUF, quantize with llama.cpp k-quants, gate it, and publish a model bundle."""
    from tqdm import tqdm

    from primitives.artifacts import ModelBundleError
    from primitives.signing import KeyFileError, SourceDateEpochError
    from quantize.llm.export import OutputError
    from quantize.llm.gates import load_thresholds
    from quantize.llm.publish import LlmBuildError, LlmBuildOptions, build_llm_bundle
    from quantize.llm.quantize import parse_types
    from quantize.llm.source import CheckpointError

    try:
        options = LlmBuildOptions(
            model_dir=model_dir, profile=profile, out_dir=out_dir, types=parse_types(types) if types else None,
            context=context, sign_key=sign_key, thresholds=load_thresholds(thresholds), eval_text=eval_text,
            threads=threads,
        )
        if sign_key is not None and not sign_key.is_file():
            raise click.ClickException(f"--sign-key {sign_key}: no such file")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc

    bars: list[tqdm] = []

    def progress_bar(label: str, total: int, **units: Any) -> Callable[[int], bool | None]:
        bar = tqdm(total=total, desc=label, leave=False, file=sys.stderr, **units)
        bars.append(bar)
        return bar.update

    def byte_progress(label: str, total: int) -> Callable[[int], bool | None]:
        return progress_bar(label, total, unit="B", unit_scale=True)

    def stage(message: str) -> None:
        for bar in bars:
            bar.close()
        bars.clear()
        click.echo(f"[orbox] {message}", err=True)

    try:
        result = build_llm_bundle(options, stage, byte_progress, progress_bar)
    except LlmBuildError as exc:
        stage("FAILED")
        _print_gates(exc.gates)
        raise click.ClickException(str(exc)) from exc
    except (CheckpointError, OutputError, ModelBundleError, KeyFileError, SourceDateEpochError) as exc:
        stage("FAILED")
        raise click.ClickException(f"{exc}; nothing was published") from exc
    stage("done")
    _print_gates(result.gates)
    for path in result.artifacts:
        click.echo(f"published {path}")
    click.echo(f"conversion throughput {result.conversion_mb_per_s:.1f} MB/s"
               + (f"; signed with {sign_key}" if sign_key else ""))


@click.command("bench")
@click.option("--size-mb", type=click.IntRange(min=16), default=1024, show_default=True,
              help="Approximate size of the synthetic checkpoint.")
@click.option("--shards", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default="bfloat16", show_default=True)
@click.option("--out-type", type=click.Choice(FLOAT_TYPES), default="f16", show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the synthetic checkpoint (default: a temporary directory, removed after).")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Copy and conversion runs, alternated; the best of each is reported.")
def bench(size_mb: int, shards: int, dtype: str, out_type: str, workdir: Path | None, repeats: int) -> None:
    """Conversion throughput (MB/s) and peak RSS on a synthetic checkpoint, beside their baselines."""
    from quantize.llm.bench import BenchError, run_bench

    try:
        lines = run_bench(size_mb, shards, dtype, out_type, workdir, repeats)
    except (BenchError, OSError) as exc:
        raise click.ClickException(f"bench failed: {exc}") from exc
    for line in lines:
        click.echo(line)
