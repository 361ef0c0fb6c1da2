"""`orbox quantize encoder`: export, quantize per the profile's ISA, gate against FP32, publish into a model bundle.

Work happens in a staging directory inside the model bundle; only a candidate that passed every gate
is moved to `encoder/<role>/` and entered in manifest.json (section "encoder"). Any failure
removes the staging directory, so a failed build leaves the bundle exactly as it was.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.encoder import Encoder, l2_normalize, pool
from primitives.artifacts import ModelBundleError, verify_artifact
from primitives.signing import load_private_key, sign_bundle
from quantize.encoder.calibration import CalibrationItem, default_calibration, load_calibration
from quantize.encoder.evalset import GATE_SENTENCES, RERANK_QUERIES, RETRIEVAL_DOCUMENTS
from quantize.encoder.export import export_onnx, fuse_onnx, load_hf_tokenizer, write_runtime_files
from quantize.encoder.gates import (
    GateThresholds,
    Outputs,
    accuracy_metrics,
    accuracy_verdicts,
    gate_outputs,
    measure_ms,
    rounded,
    workload,
)
from quantize.encoder.quantize import (
    Int8Recipe,
    fallback_chain,
    outlier_chain,
    quantizable_nodes,
    quantize_graph,
    recipe_for_profile,
    with_exclusions,
)
from quantize.encoder.source import EncoderInputError, EncoderSource, inspect_encoder
from quantize.manifest import existing_manifest, package_versions, update_manifest

SECTION = "encoder"
PARITY_MIN_COSINE = 0.99999  # FP32 ONNX vs PyTorch: the export itself must not change the embeddings
PARITY_MAX_SCORE_DIFF = 1e-4
TOOLS = ("onnxruntime", "onnx", "openvino", "nncf", "torch", "transformers", "optimum", "optimum-onnx", "tokenizers")


# stage(name) is called as each stage starts (export, every recipe tried, publish).
Stage = Callable[[str], None]


class EncoderGateError(Exception):
    """A gate failed and nothing was published; the message is the report."""


@dataclass(frozen=True)
class EncoderBuildOptions:
    model_dir: Path
    profile: str
    out_dir: Path
    task: str | None = None
    calibration: Path | None = None
    sign_key: Path | None = None
    model_id: str | None = None
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    allow_fp32: bool = True
    threads: int = 1


@dataclass
class Candidate:
    """One evaluated model: its recipe (None for FP32), metrics, verdicts and file.

    `metrics` are deterministic (same inputs, same numbers) and go into the manifest; `latency`
    holds the measured milliseconds, which differ from run to run, so they are printed but kept out
    of the manifest. Only the latency verdict (speedup >= threshold) is recorded.
    """

    name: str
    path: Path
    recipe: Int8Recipe | None
    metrics: dict[str, float]
    verdicts: dict[str, bool]
    latency: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy_ok(self) -> bool:
        return all(passed for name, passed in self.verdicts.items() if name != "speedup")

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "recipe": self.recipe.describe() if self.recipe else None,
                "metrics": rounded(self.metrics), "verdicts": self.verdicts, "passed": self.passed}


@dataclass
class Workbench:
    """The FP32 reference and everything needed to make and judge candidates."""

    source: EncoderSource
    role_dir: Path
    work_dir: Path
    export_path: Path
    fp32_path: Path
    reference: Outputs
    fp32_ms: float
    calibration: list[CalibrationItem]
    thresholds: GateThresholds
    threads: int

    def encoder(self, model_path: Path, backend: str = "onnxruntime") -> Encoder:
        return Encoder(self.role_dir, model_path, backend=backend, threads=self.threads)

    def calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        fp32 = self.encoder(self.export_path)
        return [fp32.feeds([item]) for item in self.calibration]

    def evaluate(self, name: str, path: Path, recipe: Int8Recipe | None, timed: bool = True,
                 backend: str = "onnxruntime") -> Candidate:
        encoder = self.encoder(path, backend)
        metrics = accuracy_metrics(self.reference, gate_outputs(encoder))
        verdicts = accuracy_verdicts(metrics, self.thresholds)
        latency: dict[str, float] = {}
        if timed:
            latency_ms = measure_ms(workload(encoder))
            latency = {"latency_ms": latency_ms, "fp32_latency_ms": self.fp32_ms, "speedup": self.fp32_ms / latency_ms}
            verdicts["speedup"] = latency["speedup"] >= self.thresholds.min_speedup
        return Candidate(name, path, recipe, metrics, verdicts, latency)

    def quantize(self, recipe: Int8Recipe, timed: bool = True) -> Candidate:
        path = self.work_dir / f"{recipe.name}.onnx"
        facts = quantize_graph(self.fp32_path, path, recipe, self.calibration_feeds)
        candidate = self.evaluate(recipe.name, path, recipe, timed)
        candidate.metrics.update(facts)
        return candidate


def prepare_workbench(source: EncoderSource, role_dir: Path, work_dir: Path, calibration: list[CalibrationItem],
                      thresholds: GateThresholds, threads: int, openvino: bool) -> tuple[Workbench, dict[str, Any]]:
    """Export and fuse the FP32 graph, check it against PyTorch, and measure the FP32 reference."""
    tokenizer = load_hf_tokenizer(source)
    write_runtime_files(source, role_dir, tokenizer, openvino)
    work_dir.mkdir(parents=True, exist_ok=True)
    export_path = export_onnx(source, work_dir)
    fp32_path = fuse_onnx(export_path, work_dir / "fp32.onnx", source)
    fp32 = Encoder(role_dir, fp32_path, threads=threads)
    parity = export_parity(source, tokenizer, fp32)
    bench = Workbench(source, role_dir, work_dir, export_path, fp32_path, gate_outputs(fp32),
                      measure_ms(workload(fp32)), calibration, thresholds, threads)
    return bench, parity


def export_parity(source: EncoderSource, tokenizer: Any, fp32: Encoder) -> dict[str, Any]:
    """Gate: the box's tokenizer gives the HF token ids, and the ONNX graph gives PyTorch's numbers."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    texts = [t.strip() for t in GATE_SENTENCES]
    pairs = [(RERANK_QUERIES[0], doc.strip()) for doc in RETRIEVAL_DOCUMENTS]
    batch = pairs if source.task == "reranker" else texts
    lowered = [tuple(p.lower() for p in b) if isinstance(b, tuple) else b.lower() for b in batch]
    hf_input = lowered if source.do_lower_case else batch
    columns = list(zip(*hf_input, strict=True)) if source.task == "reranker" else [hf_input]
    encoded = tokenizer(*[list(c) for c in columns], padding=True, truncation="longest_first",
                        max_length=source.max_seq_length, return_tensors="pt")
    ids_equal = bool(np.array_equal(encoded["input_ids"].numpy(), fp32.feeds(batch)["input_ids"]))
    model_class = AutoModelForSequenceClassification if source.task == "reranker" else AutoModel
    model = model_class.from_pretrained(str(source.path), local_files_only=True).eval()
    with torch.no_grad():
        output = model(**encoded)
    if source.task == "reranker":
        reference = torch.sigmoid(output.logits[:, 0]).numpy()
        diff = float(np.max(np.abs(reference - fp32.rerank(RERANK_QUERIES[0], list(RETRIEVAL_DOCUMENTS)))))
        metrics, ok = {"max_score_diff": diff}, diff <= PARITY_MAX_SCORE_DIFF
    else:
        mask = encoded["attention_mask"].numpy()
        reference = pool(output.last_hidden_state.numpy(), mask, fp32.settings.pooling_modes)
        reference = l2_normalize(reference) if fp32.settings.normalize else reference
        candidate = fp32.embed(list(GATE_SENTENCES))
        cosine = float(np.min(np.sum(l2_normalize(reference) * l2_normalize(candidate), axis=1)))
        metrics, ok = {"min_cosine": cosine}, cosine >= PARITY_MIN_COSINE
    result = {"token_ids_identical": ids_equal, **rounded(metrics), "passed": ids_equal and ok}
    if not result["passed"]:
        raise EncoderGateError(
            f"export parity gate failed for {source.path}: token ids identical={ids_equal}, {metrics} "
            f"(needs cosine >= {PARITY_MIN_COSINE} / score diff <= {PARITY_MAX_SCORE_DIFF}); nothing published"
        )
    return result


def choose_candidate(bench: Workbench, first: Int8Recipe, allow_fp32: bool,
                     stage: Stage) -> tuple[Candidate, list[Candidate], str]:
    """Walk the fallback order; return (chosen, every attempt, why it was chosen)."""
    attempts: list[Candidate] = []
    outlier_recipes = outlier_chain(first)
    for recipe in fallback_chain(first) + outlier_recipes:
        stage(f"quantize {recipe.name}")
        attempts.append(bench.quantize(recipe))
        if attempts[-1].passed:
            return attempts[-1], attempts, _reason(attempts)
    stage("exclude sensitive nodes")
    excluded = exclude_sensitive(bench, outlier_recipes[-1], stage)
    if excluded is not None:
        attempts.append(excluded)
        if excluded.passed:
            return excluded, attempts, _reason(attempts)
    if not allow_fp32:
        raise EncoderGateError("every INT8 recipe failed its gates and FP32 fallback is disabled; nothing published:\n"
                               + _report(attempts))
    fp32 = bench.evaluate("fp32", bench.fp32_path, None, timed=False)
    attempts.append(fp32)
    return fp32, attempts, "fp32 fallback: " + _reason(attempts[:-1])


def exclude_sensitive(bench: Workbench, base: Int8Recipe, stage: Stage) -> Candidate | None:
    """Rank quantizable nodes by the accuracy lost when only that node is INT8, then keep the worst in FP32,
    doubling their number until accuracy passes (at most half the nodes)."""
    nodes = quantizable_nodes(bench.fp32_path)
    losses = {}
    for node in nodes:
        stage(f"sensitivity {node}")
        alone = bench.quantize(with_exclusions(base, [n for n in nodes if n != node]), timed=False)
        losses[node] = accuracy_loss(alone.metrics)
    ranked = sorted(nodes, key=lambda n: (-losses[n], nodes.index(n)))
    count, last = 1, None
    while count <= max(1, len(nodes) // 2):
        stage(f"exclude {count} node(s)")
        last = bench.quantize(with_exclusions(base, ranked[:count]))
        if last.accuracy_ok:
            return last
        count *= 2
    return last


def accuracy_loss(metrics: dict[str, float]) -> float:
    """One number per task to rank node sensitivity: distance from perfect agreement with FP32."""
    if "min_cosine" in metrics:
        return 1.0 - metrics["min_cosine"]
    return (1.0 - metrics["min_kendall_tau"]) + (1.0 - metrics["top1_agreement"])


def _reason(attempts: list[Candidate]) -> str:
    failed = [f"{a.name} failed {', '.join(k for k, ok in a.verdicts.items() if not ok)}"
              for a in attempts if not a.passed]
    chosen = [a.name for a in attempts if a.passed]
    return "; ".join(failed + ([f"{chosen[0]} passed every gate"] if chosen else []))


def _report(attempts: list[Candidate]) -> str:
    return "\n".join(f"  {a.name}: {rounded(a.metrics)} {latency_text(a.latency)} verdicts {a.verdicts}"
                     for a in attempts)


def latency_text(latency: dict[str, float]) -> str:
    """Measured latency for the console ('' when the candidate was not timed)."""
    if not latency:
        return ""
    return (f"latency {latency['latency_ms']:.1f} ms vs fp32 {latency['fp32_latency_ms']:.1f} ms "
            f"({latency['speedup']:.2f}x)")


def build_openvino(bench: Workbench, stage: Stage) -> Candidate:
    """OpenVINO IR with NNCF INT8, gated on accuracy; FP16 IR when INT8 misses the gate."""
    from quantize.encoder.openvino import save_fp16_ir, save_int8_ir

    xml = bench.role_dir / "openvino" / "model.xml"
    stage("openvino nncf int8")
    save_int8_ir(bench.export_path, xml, bench.calibration_feeds())
    candidate = bench.evaluate("openvino-int8-nncf", xml, None, timed=False, backend="openvino")
    if not candidate.accuracy_ok:
        stage("openvino fp16")
        save_fp16_ir(bench.export_path, xml)
        fp16 = bench.evaluate("openvino-fp16", xml, None, timed=False, backend="openvino")
        if not fp16.accuracy_ok:
            raise EncoderGateError("OpenVINO IR failed its accuracy gate as NNCF INT8 and as FP16; nothing published:\n"
                                   + _report([candidate, fp16]))
        candidate = fp16
    return candidate


def tool_versions() -> dict[str, str]:
    return package_versions(TOOLS)


@dataclass(frozen=True)
class EncoderBuildResult:
    """The manifest section written for this role, and the latencies measured on the way (not in the manifest,
    so that identical inputs give a byte-identical manifest)."""

    section: dict[str, Any]
    latencies: dict[str, dict[str, float]]  # attempt name -> latency_ms, fp32_latency_ms, speedup


def build_encoder_bundle(options: EncoderBuildOptions, stage: Stage = lambda _: None) -> EncoderBuildResult:
    """Run the whole pipeline; publish only a candidate that passed every gate."""
    from hw_profiles import load_profile

    source = inspect_encoder(options.model_dir, options.task, options.model_id)
    profile = load_profile(options.profile)
    first = recipe_for_profile(profile)
    calibration = (load_calibration(options.calibration, source.task) if options.calibration
                   else default_calibration(source.task))
    if options.sign_key is not None:
        load_private_key(options.sign_key)
    out = Path(options.out_dir)
    existing = _existing_other_roles(out, profile.name, source.task)
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".encoder-staging-", dir=out))
    published = False
    try:
        role_dir = staging / source.task
        stage("export")
        bench, parity = prepare_workbench(source, role_dir, staging / "work", calibration, options.thresholds,
                                          options.threads, profile.encoder.openvino)
        chosen, attempts, reason = choose_candidate(bench, first, options.allow_fp32, stage)
        shutil.copyfile(chosen.path, role_dir / "model.onnx")
        openvino = build_openvino(bench, stage).record() if profile.encoder.openvino else None
        section = {
            "model_id": source.model_id,
            "task": source.task,
            "model_type": source.model_type,
            "inputs": source.input_files(),
            "profile_scheme": first.describe(),
            "chosen": chosen.name,
            "reason": reason,
            "parity": parity,
            "attempts": [a.record() for a in attempts],
            "openvino": openvino,
            "thresholds": options.thresholds.as_dict(),
            "calibration": {"source": options.calibration.name if options.calibration else "built-in",
                            "items": len(calibration)},
            "threads": options.threads,
            "max_seq_length": source.max_seq_length,
            "tools": tool_versions(),
        }
        stage("publish")
        _publish(out, staging, role_dir, source.task, profile.name, section, existing, chosen, openvino)
        published = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out and not published:
            with contextlib.suppress(OSError):
                out.rmdir()  # a failed build into a new directory leaves no trace (rmdir: only if empty)
    if options.sign_key is not None:
        sign_bundle(out, options.sign_key)
    return EncoderBuildResult(section, {a.name: a.latency for a in attempts if a.latency})


def _existing_other_roles(out: Path, profile: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The other role's manifest section and artifacts, verified, so that re-listing them is honest."""
    manifest = existing_manifest(out, profile)
    if manifest is None:
        return {}, {}
    keep = {path: entry for path, entry in manifest["artifacts"].items()
            if entry.get("section") == SECTION and entry.get("role") != role}
    problems = [p for path, entry in keep.items() for p in verify_artifact(out, path, entry)]
    if problems:
        raise ModelBundleError("refusing to extend a corrupted bundle: " + "; ".join(problems))
    sections = {name: data for name, data in manifest["sections"].get(SECTION, {}).items() if name != role}
    artifacts = {path: {k: v for k, v in entry.items() if k not in ("section", "sha256", "size")}
                 for path, entry in keep.items()}
    return sections, artifacts


def _publish(out: Path, staging: Path, role_dir: Path, role: str, profile: str, section: dict[str, Any],
             existing: tuple[dict[str, Any], dict[str, Any]], chosen: Candidate, openvino: dict | None) -> None:
    """Swap `encoder/<role>/` in by rename and record it in manifest.json."""
    kinds = {"model.onnx": {"kind": "onnx", "quant_type": chosen.name},
             "tokenizer.json": {"kind": "tokenizer"}, "encoder.json": {"kind": "encoder-config"}}
    artifacts = dict(existing[1])
    for file in sorted(p for p in role_dir.rglob("*") if p.is_file()):
        relpath = file.relative_to(role_dir).as_posix()
        extra = kinds.get(relpath, {"kind": "sentence-transformers-config"})
        if relpath.startswith("openvino/"):
            extra = {"kind": "openvino-ir", "quant_type": openvino["name"] if openvino else None}
        artifacts[f"encoder/{role}/{relpath}"] = {**extra, "role": role}
    for file in role_dir.rglob("*"):
        file.chmod(0o755 if file.is_dir() else 0o644)  # the box's service user reads what root built
    final = out / "encoder" / role
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        final.rename(staging / "previous")
    role_dir.rename(final)
    update_manifest(out, profile, SECTION, {**existing[0], role: section}, artifacts)


__all__ = ["EncoderBuildOptions", "EncoderBuildResult", "EncoderGateError", "EncoderInputError", "build_encoder_bundle",
           "prepare_workbench"]
