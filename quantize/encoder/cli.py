"""`orbox quantize encoder` and `orbox quantize encoder-bench`: thin click shells over `publish` and `bench`."""

from __future__ import annotations

from pathlib import Path

import click

from quantize.encoder.gates import GateThresholds

_DEFAULTS = GateThresholds()


def _expected_errors() -> tuple[type[Exception], ...]:
    from hw_profiles import ProfileError
    from inference.encoder import EncoderRuntimeError
    from primitives.artifacts import ModelBundleError
    from primitives.signing import KeyFileError, SourceDateEpochError
    from quantize.encoder.publish import EncoderGateError
    from quantize.encoder.source import EncoderInputError

    return (EncoderInputError, EncoderGateError, EncoderRuntimeError, ModelBundleError, KeyFileError,
            SourceDateEpochError, ProfileError)


class _StageBar:
    """A tqdm bar whose description is the current stage (the number of fallback steps is not known ahead)."""

    def __init__(self, label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=label, unit="step", bar_format="{desc}: {n} steps [{elapsed}] {postfix}")

    def __call__(self, stage: str) -> None:
        self.bar.set_postfix_str(stage)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@click.command("encoder")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="Local Hugging Face encoder directory (BERT / RoBERTa / XLM-R).")
@click.option("--profile", required=True, help="Hardware profile name or TOML path.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model bundle directory (shared with `orbox quantize llm`).")
@click.option("--task", type=click.Choice(["embedding", "reranker"]), default=None,
              help="Default: reranker for *ForSequenceClassification checkpoints, else embedding.")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibration texts: .txt (one per line; query<TAB>doc for rerankers) or .jsonl.")
@click.option("--sign-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ed25519 private key (PEM) to sign manifest.json.")
@click.option("--model-id", default=None, help="Name recorded in the model bundle (default: the directory name).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Threads for the gates' latency measurement.")
@click.option("--min-cosine", default=_DEFAULTS.min_cosine, show_default=True, type=float,
              help="Embedding: lowest cosine to FP32 allowed on any gate sentence (English and Chinese).")
@click.option("--mean-cosine", default=_DEFAULTS.mean_cosine, show_default=True, type=float,
              help="Embedding: lowest mean cosine to FP32 over the gate sentences.")
@click.option("--min-top5", default=_DEFAULTS.top5_agreement, show_default=True, type=float,
              help="Fraction of queries whose top-5 documents must be identical to FP32's.")
@click.option("--min-top1", default=_DEFAULTS.top1_agreement, show_default=True, type=float,
              help="Reranker: fraction of queries with the same best document.")
@click.option("--min-kendall-tau", default=_DEFAULTS.min_kendall_tau, show_default=True, type=float,
              help="Reranker: lowest Kendall tau between FP32 and INT8 document scores of any query.")
@click.option("--min-speedup", default=_DEFAULTS.min_speedup, show_default=True, type=float,
              help="INT8 must be this many times faster than FP32 on this machine.")
@click.option("--fp32-fallback/--no-fp32-fallback", default=True, show_default=True,
              help="Publish FP32 when every INT8 recipe fails; with --no-fp32-fallback publish nothing.")
def encoder(model_dir: Path, profile: str, out_dir: Path, task: str | None, calibration: Path | None,
            sign_key: Path | None, model_id: str | None, threads: int, min_cosine: float, mean_cosine: float,
            min_top5: float, min_top1: float, min_kendall_tau: float, min_speedup: float,
            fp32_fallback: bool) -> None:
    """Export an encoder to ONNX, quantize it to INT8 for PROFILE, gate it against FP32 and add it to a model bundle."""
    from quantize.encoder.publish import EncoderBuildOptions, build_encoder_bundle, latency_text

    options = EncoderBuildOptions(
        model_dir=model_dir, profile=profile, out_dir=out_dir, task=task, calibration=calibration,
        sign_key=sign_key, model_id=model_id, allow_fp32=fp32_fallback, threads=threads,
        thresholds=GateThresholds(min_cosine=min_cosine, mean_cosine=mean_cosine, top5_agreement=min_top5,
                                  top1_agreement=min_top1, min_kendall_tau=min_kendall_tau,
                                  min_speedup=min_speedup),
    )
    bar = _StageBar("quantize encoder")
    try:
        build = build_encoder_bundle(options, bar)
    except _expected_errors() as exc:
        bar.close()
        raise click.ClickException(str(exc)) from exc
    bar.close()
    section = build.section
    for attempt in section["attempts"]:
        measured = latency_text(build.latencies.get(attempt["name"], {}))
        click.echo(f"  {'PASS' if attempt['passed'] else 'fail'} {attempt['name']}: {attempt['metrics']} {measured}")
    if section["openvino"]:
        click.echo(f"  openvino: {section['openvino']['name']} {section['openvino']['metrics']}")
    click.echo(f"chose {section['chosen']} for {section['task']} ({section['reason']})")
    click.echo(f"wrote {out_dir / 'encoder' / section['task']} and {out_dir / 'manifest.json'}"
               + (" (signed)" if sign_key else ""))


@click.command("encoder-bench")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="Local Hugging Face encoder directory.")
@click.option("--profile", default="server-avx512-vnni", show_default=True, help="Profile whose INT8 scheme to use.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed repetitions per row (best-of).")
@click.option("--ops", is_flag=True, help="Also print onnxruntime's kernel time per op type for each row.")
def encoder_bench(model_dir: Path, profile: str, threads: int, repeats: int, ops: bool) -> None:
    """Print FP32 and INT8 rows side by side: latency, speedup, cosine and retrieval agreement."""
    from quantize.encoder.bench import format_table, run_bench

    bar = _StageBar("encoder bench")
    try:
        rows = run_bench(model_dir, profile, threads, repeats, bar, ops)
    except _expected_errors() as exc:
        bar.close()
        raise click.ClickException(str(exc)) from exc
    bar.close()
    click.echo(format_table(rows, threads))
