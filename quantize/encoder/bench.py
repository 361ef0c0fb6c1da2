"""FP32 vs INT8 side by side on one encoder: latency at one thread, cosine and retrieval agreement.

Rows: the plain optimum export (the FP32 ONNX baseline), the fused FP32 graph, the naive
`quantize_dynamic(per_channel=True)` of the plain export (the 2.70x reference in
docs/quantization.md#minilm-figure), and what `orbox quantize encoder` would publish for the profile.
Embedding models are also timed and compared on held-out text (the bundled clinical notes, which no
gate or calibration set uses), and `ops=True` adds onnxruntime's time per op type for each row.
Nothing is written outside a temp dir.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantize.clinical_corpus import corpus_lines
from quantize.encoder.calibration import default_calibration
from quantize.encoder.evalset import GATE_SENTENCES, RETRIEVAL_QUERIES
from quantize.encoder.gates import GateThresholds, accuracy_metrics, gate_outputs, measure_ms, row_cosines, workload
from quantize.encoder.op_profile import format_op_profile, op_type_ms
from quantize.encoder.publish import Stage, Workbench, choose_candidate, prepare_workbench
from quantize.encoder.quantize import recipe_for_profile
from quantize.encoder.source import inspect_encoder


@dataclass(frozen=True)
class BenchRow:
    name: str
    batch_ms: float
    query_ms: float
    metrics: dict[str, float]
    ops: dict[str, float] | None = None


def _held_out(bench: Workbench, encoder: Any, repeats: int) -> dict[str, float]:
    """ms per held-out sentence (batch 1) and min cosine against the fused FP32 graph on them."""
    held_out = corpus_lines()
    reference = bench.encoder(bench.fp32_path).embed(held_out)
    ms = measure_ms(lambda: [encoder.embed([text]) for text in held_out], repeats) / len(held_out)
    return {"held_out_ms": ms, "held_out_min_cosine": float(row_cosines(reference, encoder.embed(held_out)).min())}


def _row(bench: Workbench, name: str, path: Path, repeats: int, ops: bool) -> BenchRow:
    encoder = bench.encoder(path)
    metrics = accuracy_metrics(bench.reference, gate_outputs(encoder))
    if encoder.settings.task == "reranker":
        one_at_a_time = [lambda q=q: encoder.rerank(q, [RETRIEVAL_QUERIES[0]]) for q in RETRIEVAL_QUERIES]
    else:
        one_at_a_time = [lambda q=q: encoder.embed([q]) for q in RETRIEVAL_QUERIES]
        metrics.update(_held_out(bench, encoder, repeats))
    query_ms = measure_ms(lambda: [run() for run in one_at_a_time], repeats) / len(RETRIEVAL_QUERIES)
    times = op_type_ms(path, [encoder.feeds([text]) for text in GATE_SENTENCES], bench.threads) if ops else None
    return BenchRow(name, measure_ms(workload(encoder), repeats), query_ms, metrics, times)


def run_bench(model_dir: Path, profile_name: str, threads: int, repeats: int,
              stage: Stage = lambda _: None, ops: bool = False) -> list[BenchRow]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from hw_profiles import load_profile

    source = inspect_encoder(model_dir)
    profile = load_profile(profile_name)
    first = recipe_for_profile(profile)
    with tempfile.TemporaryDirectory(prefix="orbox-encoder-bench-") as tmp:
        root = Path(tmp)
        stage("export")
        bench, _ = prepare_workbench(source, root / source.task, root / "work", default_calibration(source.task),
                                     GateThresholds(), threads, openvino=False)
        stage("naive int8")
        naive = root / "work" / "naive.onnx"
        quantize_dynamic(str(bench.export_path), str(naive), per_channel=True, weight_type=QuantType.QInt8)
        stage("pipeline int8")
        chosen, _, _ = choose_candidate(bench, first, True, stage)
        rows = []
        for name, path in (("fp32-export", bench.export_path), ("fp32-fused", bench.fp32_path),
                           ("int8-naive-dynamic", naive), (f"int8-{chosen.name}", chosen.path)):
            stage(f"time {name}")
            rows.append(_row(bench, name, path, repeats, ops))
    return rows


def format_table(rows: list[BenchRow], threads: int) -> str:
    """Text table with speedups against the first row (the FP32 ONNX baseline)."""
    base = rows[0]
    metric_names = [m for m in base.metrics if not m.startswith("held_out")]
    header = ["variant", "gate-set ms", "x fp32", "ms/query", "x fp32", *metric_names]
    lines = [header]
    for row in rows:
        lines.append([
            row.name, f"{row.batch_ms:.1f}", f"{base.batch_ms / row.batch_ms:.2f}", f"{row.query_ms:.2f}",
            f"{base.query_ms / row.query_ms:.2f}", *(f"{row.metrics[m]:.4f}" for m in metric_names),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    note = (f"threads={threads}; accuracy columns compare against the fused FP32 graph; "
            f"measured {time.strftime('%Y-%m-%d %H:%M:%S')} on a shared machine (noisy)")
    held_out = [f"held-out text, {row.name}: {base.metrics['held_out_ms'] / row.metrics['held_out_ms']:.2f}x "
                f"fp32-export, min cosine {row.metrics['held_out_min_cosine']:.4f}"
                for row in rows if "held_out_ms" in row.metrics]
    profiles = [format_op_profile(row.name, row.ops) for row in rows if row.ops is not None]
    return "\n".join([*rendered, note, *held_out, *profiles])
