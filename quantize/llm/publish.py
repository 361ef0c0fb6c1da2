"""`orbox quantize llm`: checkpoint → F32 reference GGUF → published types → gates → model bundle.

Failures publish nothing: everything is built in a temporary directory inside the model bundle
and only moved into `llm/` (and recorded with update_manifest) after every gate passed.

Traceability without a circular hash: the *build record* (input file digests, parameters, profile,
thresholds and tool versions, i.e. everything known before the first byte is written) is hashed as
sha256(canonical_json(record)). That hash is written into every GGUF under `orbox.build_record_sha256`,
and the record itself is stored in the manifest at sections.llm.record, so for a deployed file

    sha256(canonical_json(manifest["sections"]["llm"]["record"])) == gguf["orbox.build_record_sha256"]

while the manifest still pins the GGUF's own sha256 in its artifacts list.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from hw_profiles.gguf_types import QUANTIZED_TYPES
from primitives.artifacts import file_digest
from primitives.signing import canonical_json, load_private_key, sign_bundle
from quantize.clinical_corpus import corpus_text
from quantize.llm.architecture import read_hparams, required_keys
from quantize.llm.export import ConversionResult, OutputError, checkpoint_bytes, convert_checkpoint
from quantize.llm.gates import Thresholds
from quantize.llm.quantize import quantize_gguf, type_histogram
from quantize.llm.source import CheckpointError, input_files, load_config
from quantize.manifest import existing_manifest, package_versions, update_manifest

RECORD_KEY = "orbox.build_record_sha256"
RECORD_SCHEMA = "orbox.llm-build-record/1"
TOOLS = ("llama-cpp-python", "gguf", "torch", "transformers", "tokenizers", "sentencepiece", "numpy")
PARITY_TOKENS = 128


class LlmBuildError(Exception):
    """The build could not run, or a gate failed; `gates` holds every verdict for the report."""

    def __init__(self, message: str, gates: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.gates = gates or {}


@dataclass
class LlmBuildOptions:
    model_dir: Path
    profile: str
    out_dir: Path
    types: list[str] | None = None
    context: int | None = None
    sign_key: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    eval_text: Path | None = None
    threads: int = 2


@dataclass
class LlmBuildResult:
    manifest: dict[str, Any]
    artifacts: list[Path]
    conversion_mb_per_s: float
    gates: dict[str, Any]


# stage(name) is called as each stage starts (writing a type, each gate, publishing).
Stage = Callable[[str], None]
# progress(label, total) opens a bar and returns its advance(n); bytes for conversion, steps for the gates.
Progress = Callable[[str, int], Callable[[int], Any]]


def _no_progress(label: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def tool_versions() -> dict[str, str]:
    """Versions of every package that shapes the output, plus the exact libllama that quantized it."""
    versions = package_versions(TOOLS)
    import llama_cpp

    # The binding does not expose llama.cpp's commit; the digest of the loaded libllama identifies it exactly.
    library = Path(llama_cpp.__file__).parent / "lib" / "libllama.so"
    versions["llama.cpp"] = f"libllama sha256:{file_digest(library).sha256}" if library.is_file() else "unknown"
    return versions


def _choose_types(options: LlmBuildOptions, config: dict[str, Any], profile: Any) -> tuple[list[str], Any]:
    from hw_profiles import PlanError, plan_llm

    if options.types:
        return options.types, None
    try:
        plan = plan_llm(config, profile, options.context)
    except PlanError as exc:
        raise LlmBuildError(f"planner: {exc}") from exc
    return [plan.chosen_type], plan


def _plan_record(plan: Any) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {"chosen_type": plan.chosen_type, "reason": plan.reason, "params": plan.params,
            "context": plan.context, "budget_bytes": plan.budget_bytes,
            "rows": [{"type": r.gguf_type, "weight_bytes": r.weight_bytes, "kv_bytes": r.kv_bytes,
                      "overhead_bytes": r.overhead_bytes, "total_bytes": r.total_bytes, "fits": r.fits}
                     for r in plan.rows]}


def build_record(options: LlmBuildOptions, profile_name: str, arch: str, types: list[str],
                 plan: Any, eval_text: str) -> dict[str, Any]:
    model_dir = options.model_dir
    return {
        "schema": RECORD_SCHEMA,
        "source": {"name": model_dir.name, "architecture": arch,
                   "files": {p.relative_to(model_dir).as_posix(): file_digest(p).as_dict()
                             for p in input_files(model_dir)}},
        "profile": profile_name,
        "parameters": {"types": types, "types_from": "planner" if plan is not None else "--types",
                       "context": options.context, "reference_type": "f32",
                       "eval_text_sha256": hashlib.sha256(eval_text.encode()).hexdigest(),
                       "thresholds": options.thresholds.as_dict()},
        "plan": _plan_record(plan),
        "tools": tool_versions(),
    }


def _output_name(model_dir: Path, qtype: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_dir.name) or "model"
    return f"{stem}-{qtype}.gguf"


@contextlib.contextmanager
def _gates_must_run(gates: dict[str, Any]) -> Iterator[None]:
    """A gate that cannot run at all (transformers or llama.cpp refuses the model, e.g. an unknown
    tokenizer_class) fails the build with the library's reason instead of a traceback."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as exc:
        raise LlmBuildError(f"a gate could not run ({type(exc).__name__}: {exc}); nothing was published",
                            gates) from exc


def _raise_on_failures(gates: dict[str, Any]) -> None:
    failed = []
    for name, verdict in gates.items():
        nested = verdict.values() if "verdict" not in verdict else [verdict]
        failed += [name for v in nested if v["verdict"] != "pass"]
    if failed:
        raise LlmBuildError(f"gate(s) failed: {', '.join(sorted(set(failed)))}; nothing was published", gates)


def build_llm_bundle(options: LlmBuildOptions, stage: Stage = lambda _: None, byte_progress: Progress = _no_progress,
                     step_progress: Progress = _no_progress) -> LlmBuildResult:
    """Build, gate and publish. Raises CheckpointError / LlmBuildError / OutputError / ModelBundleError;
    any other OSError while writing the model bundle becomes an OutputError naming the path."""
    from hw_profiles import ProfileError, load_profile

    model_dir = options.model_dir
    if not model_dir.is_dir():
        raise CheckpointError(f"--model {model_dir}: not a directory")
    config = load_config(model_dir)
    hp = read_hparams(config)
    try:
        profile = load_profile(options.profile)
    except ProfileError as exc:
        raise LlmBuildError(f"--profile: {exc}") from exc
    types, plan = _choose_types(options, config, profile)
    eval_text = _read_eval_text(options.eval_text)
    # Refuse what would only fail at publish time (a key we cannot sign with, a bundle of another
    # profile or with a broken manifest) before any file of the bundle is touched.
    if options.sign_key is not None:
        load_private_key(options.sign_key)
    previous = existing_manifest(options.out_dir, profile.name) if options.out_dir.is_dir() else None
    record = build_record(options, profile.name, hp.arch, types, plan, eval_text)
    record_sha = hashlib.sha256(canonical_json(record)).hexdigest()

    created = not options.out_dir.exists()
    build_dir = None
    try:
        options.out_dir.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(prefix=".llm-build-", dir=options.out_dir))
        result = _build_in(build_dir, options, types, record, record_sha, eval_text, stage, byte_progress,
                           step_progress)
        _remove_replaced(options.out_dir, previous, result.manifest)
    except BaseException as exc:
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                options.out_dir.rmdir()
        if isinstance(exc, OSError):
            where = exc.filename or options.out_dir
            raise OutputError(f"--out {options.out_dir}: cannot write {where} ({exc.strerror or exc})") from exc
        raise
    shutil.rmtree(build_dir, ignore_errors=True)
    return result


def _read_eval_text(path: Path | None) -> str:
    if path is None:
        return corpus_text()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LlmBuildError(f"--eval-text {path}: cannot read ({exc})") from exc
    if not text.strip():
        raise LlmBuildError(f"--eval-text {path}: expected UTF-8 text to score the quantized models on, found "
                            f"{'an empty file' if not text else 'only white space'}")
    return text


def _remove_replaced(out_dir: Path, previous: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    """Delete our earlier GGUF files that this run's manifest no longer lists (e.g. other --types)."""
    if previous is None:
        return
    for relpath, entry in previous["artifacts"].items():
        if entry.get("section") == "llm" and relpath not in manifest["artifacts"]:
            (out_dir / relpath).unlink(missing_ok=True)


def _convert(model_dir: Path, target: Path, out_type: str, record_sha: str,
             byte_progress: Progress) -> ConversionResult:
    advance = byte_progress(f"convert {out_type}", checkpoint_bytes(model_dir))
    return convert_checkpoint(model_dir, target, out_type, {RECORD_KEY: record_sha}, advance)


def _generation_gates(gates: dict[str, Any], reference: Path, outputs: dict[str, Path], model_dir: Path,
                      thresholds: Thresholds, threads: int, stage: Stage) -> None:
    """Greedy chat answers: F32 GGUF against transformers (generation_parity), then each file (smoke)."""
    from transformers import AutoTokenizer

    from quantize.llm.gates.control_tokens import source_end_ids, thinking_markers
    from quantize.llm.gates.generation import llama_generations, transformers_generations
    from quantize.llm.gates.generation_parity import generation_parity_gate
    from quantize.llm.gates.smoke import smoke_gate
    from quantize.llm.gates.tokenizer_parity import CHAT_CASES, hf_chat_ids

    hf = AutoTokenizer.from_pretrained(model_dir)
    prompts = [hf_chat_ids(hf, messages) for messages in CHAT_CASES]
    labels = [messages[-1]["content"][:40] for messages in CHAT_CASES]
    end_ids = sorted({i for ids in source_end_ids(model_dir, hf).values() for i in ids})
    limit = thresholds.generation_max_new_tokens
    stage(f"gate: generation parity (greedy, up to {limit} new tokens, transformers vs llama.cpp F32)")
    expected = transformers_generations(model_dir, prompts, end_ids, limit)
    f32 = llama_generations(reference, prompts, limit, threads)
    gates["generation_parity"] = generation_parity_gate(
        expected, f32, labels, thresholds, lambda i: f"{i} {hf.convert_ids_to_tokens(i)!r}", thinking_markers(hf),
    ).as_dict()
    stage("gate: smoke generation (each file; departure from F32 as information)")
    for qtype, path in outputs.items():
        gates["smoke"][qtype] = smoke_gate(path, prompts, f32, thresholds, threads).as_dict()


def _build_in(build_dir: Path, options: LlmBuildOptions, types: list[str], record: dict[str, Any],
              record_sha: str, eval_text: str, stage: Stage, byte_progress: Progress,
              step_progress: Progress) -> LlmBuildResult:
    from quantize.llm.gates.control_tokens import control_tokens_gate
    from quantize.llm.gates.converter_parity import converter_parity_gate
    from quantize.llm.gates.quantization import quantization_gate, reference_logprobs, score_type, windows
    from quantize.llm.gates.runtime import open_llama
    from quantize.llm.gates.structural import structural_gate
    from quantize.llm.gates.tokenizer_parity import tokenizer_parity_gate

    model_dir, thresholds, threads = options.model_dir, options.thresholds, options.threads
    reference = build_dir / "reference-f32.gguf"
    converted = _convert(model_dir, reference, "f32", record_sha, byte_progress)
    outputs: dict[str, Path] = {}
    for qtype in types:
        target = build_dir / _output_name(model_dir, qtype)
        stage(f"writing {qtype}")
        if qtype in QUANTIZED_TYPES:
            quantize_gguf(reference, target, qtype, threads)
        elif qtype == "f32":
            shutil.copyfile(reference, target)
        else:
            _convert(model_dir, target, qtype, record_sha, byte_progress)
        outputs[qtype] = target

    arch = converted.arch
    expected_meta = {RECORD_KEY: record_sha}
    gates: dict[str, Any] = {"structural": {}, "smoke": {}}
    with _gates_must_run(gates):
        stage("gate: structural")
        checked = [("reference-f32", reference), *outputs.items()]
        advance = step_progress("structural: tensors", len(checked) * len(converted.tensor_names))
        for name, path in checked:
            gates["structural"][name] = structural_gate(path, required_keys(arch), converted.tensor_names,
                                                        expected_meta, advance).as_dict()
        stage("gate: tokenizer parity")
        gates["tokenizer_parity"] = tokenizer_parity_gate(reference, model_dir).as_dict()

        vocab = open_llama(reference, vocab_only=True)
        stream = vocab.tokenize(eval_text.encode("utf-8"), add_bos=False, special=False)
        add_bos = vocab.metadata.get(gguf.Keys.Tokenizer.ADD_BOS) == "true"
        parity_ids = ([vocab.token_bos()] if add_bos else []) + stream[: PARITY_TOKENS - int(add_bos)]
        stage("gate: converter parity (transformers vs llama.cpp, F32)")
        gates["converter_parity"] = converter_parity_gate(reference, model_dir, parity_ids, thresholds,
                                                          threads).as_dict()

        quantized = [t for t in types if t in QUANTIZED_TYPES]
        if quantized:
            stage(f"gate: quantization KLD over >= {thresholds.kld_min_tokens} tokens")
            window = min(512, converted.hparams.context)
            chunks = windows(stream, window, thresholds.kld_min_tokens)
            advance = step_progress("KLD: windows", len(chunks) * (1 + len(quantized)))
            scratch = build_dir / "reference-logprobs.npy"
            ref_logprobs = reference_logprobs(reference, chunks, scratch, threads, advance)
            measured = {t: score_type(outputs[t], chunks, ref_logprobs, threads, advance) for t in quantized}
            scored = ref_logprobs.shape[0] * ref_logprobs.shape[1]
            del ref_logprobs
            gates["quantization"] = quantization_gate(measured, scored, thresholds).as_dict()

        stage("gate: control tokens (end of generation, thinking markers)")
        gates["control_tokens"] = control_tokens_gate(reference, model_dir).as_dict()
        _generation_gates(gates, reference, outputs, model_dir, thresholds, threads, stage)
    _raise_on_failures(gates)

    stage("publishing")
    llm_dir = options.out_dir / "llm"
    llm_dir.mkdir(exist_ok=True)
    artifacts, published, histograms = {}, [], {}
    for qtype, path in outputs.items():
        relpath = f"llm/{path.name}"
        histograms[relpath] = type_histogram(path, qtype)
        os.replace(path, options.out_dir / relpath)
        published.append(options.out_dir / relpath)
        artifacts[relpath] = {"kind": "gguf", "role": "llm", "quant_type": qtype, "architecture": arch}
    section = {"record": record, "record_sha256": record_sha, "gguf_record_key": RECORD_KEY,
               "tensor_types": histograms, "gates": gates}
    manifest = update_manifest(options.out_dir, record["profile"], "llm", section, artifacts)
    if options.sign_key is not None:
        sign_bundle(options.out_dir, options.sign_key)
    mb_per_s = converted.bytes_read / 1e6 / max(converted.seconds, 1e-9)
    return LlmBuildResult(manifest, published, mb_per_s, gates)


__all__ = ["LlmBuildError", "LlmBuildOptions", "LlmBuildResult", "build_llm_bundle"]
