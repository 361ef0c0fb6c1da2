"""`orbox kb build|verify|inspect|search|eval|calibrate|synth|bench`: the knowledge base from the command line.

Every failure is one line (click.ClickException) naming the file or parameter. Nothing printed
to the log side (stderr) holds document or query text; results go to stdout for the user who asked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from knowledge_base.errors import KnowledgeBaseError

EXISTING = click.Path(exists=False, path_type=Path)


def _profile(name: str | None) -> Any:
    if name is None:
        return None
    from hw_profiles import ProfileError, load_profile

    try:
        return load_profile(name)
    except ProfileError as exc:
        raise click.ClickException(f"--profile {name}: {exc}") from exc


def _open(kb_dir: Path, profile: str | None, pubkey: Path | None = None) -> Any:
    from knowledge_base.search import KnowledgeBase

    try:
        return KnowledgeBase.open(kb_dir, _profile(profile), pubkey=pubkey)
    except KnowledgeBaseError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def kb() -> None:
    """Knowledge bases: build from hospital documents, verify, inspect, search, evaluate."""


@kb.command()
@click.argument("src_dir", type=EXISTING)
@click.option("--out", "out_dir", required=True, type=EXISTING, help="KB directory to create or replace.")
@click.option("--encoder", "encoder_bundle", required=True, type=EXISTING,
              help="Model bundle holding the INT8 embedding encoder.")
@click.option("--reranker", "reranker_bundle", type=EXISTING, default=None, help="Model bundle holding a reranker.")
@click.option("--sign-key", type=EXISTING, default=None, help="ed25519 private key to sign the manifest.")
@click.option("--profile", default=None, help="Box profile (name or TOML); default: the encoder bundle's.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="On a document that cannot be read: stop the build, or skip it and go on.")
@click.option("--dense-languages", default="en,zh", show_default=True,
              help="Query languages the embedding encoder was trained on; other queries use the lexical leg alone.")
@click.option("--max-chunk-chars", default=400, show_default=True, type=click.IntRange(min=50),
              help="Longest chunk, in characters (a longer single sentence stays whole).")
def build(src_dir: Path, out_dir: Path, encoder_bundle: Path, reranker_bundle: Path | None, sign_key: Path | None,
          profile: str | None, on_error: str, dense_languages: str, max_chunk_chars: int) -> None:
    """Index SRC_DIR (.txt .md .html .docx .pdf) into a signed, reproducible KB at --out."""
    from inference.encoder import EncoderRuntimeError
    from knowledge_base.build import BuildOptions, build_kb
    from knowledge_base.chunking import ChunkingParameters
    from knowledge_base.search import LANGUAGES
    from primitives.signing import KeyFileError

    languages = tuple(sorted({part.strip() for part in dense_languages.split(",") if part.strip()}))
    unknown = [language for language in languages if language not in LANGUAGES]
    if unknown:
        raise click.BadParameter(f"expected a comma-separated subset of {','.join(LANGUAGES)}, found {unknown}",
                                 param_hint="--dense-languages")
    options = BuildOptions(src_dir, out_dir, encoder_bundle, reranker_bundle, sign_key, _profile(profile),
                           on_error, ChunkingParameters(max_chunk_chars), dense_languages=languages)
    try:
        report = build_kb(options, warn=lambda line: click.echo(line, err=True))
    except (KnowledgeBaseError, EncoderRuntimeError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out_dir}: {report.documents} documents, {report.chunks} chunks"
               + (f", {len(report.skipped)} skipped" if report.skipped else ""))


@kb.command()
@click.argument("kb_dir", type=EXISTING)
@click.option("--pubkey", type=EXISTING, default=None, help="ed25519 public key the manifest must be signed by.")
def verify(kb_dir: Path, pubkey: Path | None) -> None:
    """Check every file's sha256 (and the signature, given --pubkey)."""
    from knowledge_base.manifest import verify_kb
    from primitives.signing import KeyFileError

    try:
        problems = verify_kb(kb_dir, pubkey)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if problems:
        raise click.ClickException(f"{kb_dir}: {len(problems)} problems: " + "; ".join(problems))
    click.echo(f"{kb_dir}: OK" + (" (signature verified)" if pubkey else ""))


@kb.command()
@click.argument("kb_dir", type=EXISTING)
@click.option("--doc", "doc_id", default=None, help="Show the chunks and sentence spans of one document.")
def inspect(kb_dir: Path, doc_id: str | None) -> None:
    """What was indexed: documents, or one document's sections and chunks with their spans."""
    from knowledge_base.manifest import read_kb_manifest
    from knowledge_base.store import StoreReader

    try:
        manifest = read_kb_manifest(kb_dir)
        store = StoreReader(kb_dir / "kb.sqlite")
        if doc_id is None:
            section = manifest["sections"]["knowledge_base"]
            click.echo(f"profile {manifest['profile']}, encoders: "
                       + ", ".join(f"{role} {e['model_id']}" for role, e in sorted(section["encoders"].items()))
                       + f", chunking {section['chunking']}")
            click.echo(f"{'doc_id':<40} {'format':<6} {'chunks':>6}  title")
            for doc, title, fmt, _, chunks in store.documents():
                click.echo(f"{doc:<40} {fmt:<6} {chunks:>6}  {title}")
            return
        text = store.document_text(doc_id)
        for chunk_id, ordinal, section, page, start, end, _ in store.document_chunks(doc_id):
            where = f"page {page}" if page is not None else (section or "(no heading)")
            click.echo(f"chunk {chunk_id} #{ordinal} [{start}, {end}) {where}")
            for sentence_id, s_start, s_end in store.sentences(chunk_id):
                click.echo(f"  sentence {sentence_id} [{s_start}, {s_end}) {text[s_start:s_end]}")
    except KnowledgeBaseError as exc:
        raise click.ClickException(str(exc)) from exc


@kb.command()
@click.argument("kb_dir", type=EXISTING)
@click.argument("query")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--leg", type=click.Choice(["hybrid", "lexical", "dense"]), default="hybrid", show_default=True)
@click.option("--profile", default=None, help="Box profile the KB must have been built for.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with the results.")
def search(kb_dir: Path, query: str, top_k: int, leg: str, profile: str | None, as_json: bool) -> None:
    """The best chunks for QUERY with their spans in the source documents."""
    with _open(kb_dir, profile) as knowledge_base:
        try:
            hits = knowledge_base.search(query, top_k, leg)
        except KnowledgeBaseError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"results": [hit.as_dict() for hit in hits]}, ensure_ascii=False))
        return
    for rank, hit in enumerate(hits, start=1):
        where = f"p.{hit.page}" if hit.page is not None else hit.section
        click.echo(f"{rank}. [{hit.score:.4f}] {hit.doc_id} ({where}) [{hit.start_char}, {hit.end_char})")
        click.echo(f"   {hit.text}")


@kb.command("eval")
@click.argument("kb_dir", type=EXISTING)
@click.option("--qrels", required=True, type=EXISTING, help="JSON lines: id, lang, query, answerable, doc_id, answer.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--profile", default=None, help="Box profile the KB must have been built for.")
def eval_command(kb_dir: Path, qrels: Path, top_k: int, profile: str | None) -> None:
    """recall@k per leg, citation spans, the checker's mutation suite, refusals; exit 1 when a gate fails."""
    from knowledge_base.evaluate import evaluate, load_qrels

    try:
        questions = load_qrels(qrels)
    except KnowledgeBaseError as exc:
        raise click.ClickException(str(exc)) from exc
    with _open(kb_dir, profile) as knowledge_base:
        report = evaluate(knowledge_base, questions, top_k)
    click.echo(report.table())
    failures = report.failures()
    if failures:
        raise click.ClickException("gate failed: " + "; ".join(failures))
    click.echo("gates passed")


@kb.command()
@click.argument("kb_dir", type=EXISTING)
@click.option("--qrels", required=True, type=EXISTING, help="JSON lines with answerable and unanswerable questions.")
@click.option("--sign-key", type=EXISTING, default=None, help="ed25519 private key to re-sign the manifest.")
@click.option("--profile", default=None, help="Box profile the KB must have been built for.")
def calibrate(kb_dir: Path, qrels: Path, sign_key: Path | None, profile: str | None) -> None:
    """Calibrate the answerability gate on QRELS; store it in the KB; print the refusal curve."""
    from knowledge_base.calibration import calibrate as calibrate_gate
    from knowledge_base.calibration import calibration_record, store_calibration
    from knowledge_base.evaluate import load_qrels
    from primitives.signing import KeyFileError

    try:
        questions = load_qrels(qrels)
        with _open(kb_dir, profile) as knowledge_base:
            report, point = calibrate_gate(knowledge_base, questions)
        click.echo(report.table(point.threshold, "chosen"))
        failures = report.failures(point.threshold)
        if failures:
            raise click.ClickException("not calibrated, gate failed: " + "; ".join(failures))
        store_calibration(kb_dir, calibration_record(report, point), sign_key)
    except (KnowledgeBaseError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{kb_dir}: calibration stored" + (" and manifest re-signed" if sign_key else ""))


@kb.command()
@click.argument("out_dir", type=EXISTING)
@click.option("--qrels", required=True, type=EXISTING, help="Where to write the questions (JSON lines).")
@click.option("--seed", default=0, show_default=True)
@click.option("--drugs", default=12, show_default=True, type=click.IntRange(2, 1900))
@click.option("--diseases", default=8, show_default=True, type=click.IntRange(2, 60))
@click.option("--departments", default=4, show_default=True, type=click.IntRange(1, 32))
def synth(out_dir: Path, qrels: Path, seed: int, drugs: int, diseases: int, departments: int) -> None:
    """Write the seeded synthetic zh+en hospital corpus and its questions (fictional names only)."""
    from knowledge_base.synthetic import generate_corpus, write_corpus

    corpus = generate_corpus(seed, drugs, diseases, departments)
    write_corpus(corpus, out_dir, qrels)
    click.echo(f"{out_dir}: {len(corpus.documents)} documents; {qrels}: {len(corpus.questions)} questions")


@kb.command()
@click.option("--encoder", "encoder_bundle", required=True, type=EXISTING, help="Model bundle with the encoder.")
@click.option("--reranker", "reranker_bundle", type=EXISTING, default=None, help="Model bundle with a reranker.")
@click.option("--chunks", default=100_000, show_default=True, type=click.IntRange(min=100),
              help="Size of the KB searched.")
@click.option("--drugs", default=300, show_default=True, type=click.IntRange(2, 1900),
              help="Distinct drugs in the embedded corpus (tiled up to --chunks).")
@click.option("--queries", default=200, show_default=True, type=click.IntRange(min=10))
def bench(encoder_bundle: Path, reranker_bundle: Path | None, chunks: int, drugs: int, queries: int) -> None:
    """Latency at --chunks chunks and ingestion rate, beside a plain FTS5 and a bare matmul baseline."""
    from knowledge_base.bench import format_bench, run_bench

    try:
        rows = run_bench(encoder_bundle, reranker_bundle, chunks, drugs, queries, progress=sys.stderr.isatty())
    except KnowledgeBaseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_bench(rows))
