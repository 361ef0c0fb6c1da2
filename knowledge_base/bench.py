"""`orbox kb bench`: retrieval latency at 10^5 chunks and ingestion rate, each beside a named baseline.

The synthetic corpus is built for real (files, readers, chunker, FTS5, INT8 encoder, manifest) at a
size the 2-core box embeds in about a minute, giving the ingestion rate. Its documents are then
tiled into a 10^5-chunk index (a real FTS5 table over the tiled text, the real vectors repeated),
because latency depends on the index's size and posting lists, not on whether each vector is new.
Baselines: a plain FTS5 table with SQLite's default unicode61 tokenizer over the same text (what an
untuned setup does, and it finds no Chinese word inside a phrase), and the bare numpy matmul.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge_base.build import BuildOptions, build_kb
from knowledge_base.search import KnowledgeBase
from knowledge_base.store import SECTION_SEPARATOR, StoreReader, StoreWriter
from knowledge_base.synthetic import generate_corpus, write_corpus


@dataclass(frozen=True)
class BenchRow:
    name: str
    p50: float
    p95: float
    unit: str
    note: str = ""


def _timed(function: Callable[[str], object], queries: list[str]) -> tuple[float, float]:
    samples = []
    for query in queries:
        start = time.perf_counter()
        function(query)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _tile(kb: KnowledgeBase, target: Path, baseline: Path, chunks: int) -> tuple[np.ndarray, float]:
    """Copy the KB's documents (doc ids suffixed) until `chunks` chunks; returns the vectors and index seconds."""
    writer = StoreWriter(target.with_suffix(".scratch"))
    plain = sqlite3.connect(baseline)
    plain.execute("CREATE VIRTUAL TABLE plain USING fts5(text)")
    documents = kb.store.documents()
    started, added, copy = time.perf_counter(), 0, 0
    while added < chunks:
        for doc_id, title, fmt, sha256, _ in documents:
            text = kb.store.document_text(doc_id)
            rows = kb.store.document_chunks(doc_id)[:chunks - added]
            specs = [(section, page, start, end, [(s, e) for _, s, e in kb.store.sentences(chunk_id)],
                      SECTION_SEPARATOR.join((title, section)))
                     for chunk_id, _, section, page, start, end, _ in rows]
            writer.add_document(f"{doc_id}@{copy}", title, fmt, sha256, text, specs)
            plain.executemany("INSERT INTO plain(text) VALUES (?)",
                              [(f"{spec[5]}\n{text[spec[2]:spec[3]]}",) for spec in specs])
            added += len(rows)
            if added >= chunks:
                break
        copy += 1
    writer.publish(target)
    plain.commit()
    plain.close()
    seconds = time.perf_counter() - started
    repeats = -(-chunks // len(kb.matrix))
    return np.ascontiguousarray(np.tile(kb.matrix, (repeats, 1))[:chunks]), seconds


def run_bench(encoder_bundle: Path, reranker_bundle: Path | None, chunks: int, drugs: int, queries: int,
              progress: bool = False) -> list[BenchRow]:
    with tempfile.TemporaryDirectory(prefix="orbox-kb-bench.") as scratch:
        root = Path(scratch)
        corpus = generate_corpus(seed=0, drugs=drugs, diseases=max(2, min(60, drugs // 4)),
                                 departments=max(1, min(32, drugs // 10)), unanswerable=max(2, queries // 10))
        write_corpus(corpus, root / "src", root / "qrels.jsonl")
        started = time.perf_counter()
        report = build_kb(BuildOptions(root / "src", root / "kb", encoder_bundle, reranker_bundle, progress=progress),
                          warn=lambda _: None)
        build_s = time.perf_counter() - started
        asked = [q.query for q in corpus.questions]
        asked = (asked * (-(-queries // len(asked))))[:queries]
        with KnowledgeBase.open(root / "kb") as small:
            matrix, index_s = _tile(small, root / "tiled.sqlite", root / "plain.sqlite", chunks)
            tiled = KnowledgeBase(StoreReader(root / "tiled.sqlite"), matrix, small.encoder, small.reranker)
            plain = sqlite3.connect(root / "plain.sqlite")
            query_vector = small.encoder.embed([asked[0]])[0]
            rows = [
                BenchRow("query embedding (batch 1)", *_timed(lambda q: tiled.encoder.embed([q]), asked), "ms",
                         "target p50 <= 30"),
                BenchRow("lexical leg (jieba + bigram FTS5)", *_timed(tiled.lexical, asked), "ms"),
                BenchRow("  baseline: plain FTS5 unicode61", *_timed(lambda q: _plain_query(plain, q), asked), "ms"),
                BenchRow("dense leg (embed + exact top-50)", *_timed(tiled.dense, asked), "ms"),
                BenchRow("  baseline: bare numpy matmul", *_timed(lambda _: matrix @ query_vector, asked), "ms"),
                BenchRow("lexical + dense + fusion", *_timed(tiled.fused, asked), "ms", "target p50 <= 150"),
            ]
            if tiled.reranker is not None:
                rows.append(BenchRow("rerank of the top 20", *_timed(lambda q: tiled.reranked(q, tiled.fused(q)),
                                                                     asked[:20]), "ms", "includes fusion"))
            else:
                rows.append(BenchRow("rerank", float("nan"), float("nan"), "ms", "no --reranker given"))
            plain.close()
            tiled.close()
        rows += [BenchRow("ingestion, full build", report.chunks / build_s, report.chunks / build_s, "chunks/s",
                          f"{report.documents} documents, {report.chunks} chunks in {build_s:.1f} s"),
                 BenchRow("ingestion, FTS5 index only", chunks / index_s, chunks / index_s, "chunks/s",
                          f"{chunks} chunks in {index_s:.1f} s")]
    return rows


def _plain_query(db: sqlite3.Connection, query: str) -> list:
    terms = re.findall(r"\w+", query)
    if not terms:
        return []
    match = " OR ".join(f'"{term}"' for term in terms)
    return db.execute("SELECT rowid FROM plain WHERE plain MATCH ? ORDER BY bm25(plain), rowid LIMIT 50",
                      (match,)).fetchall()


def format_bench(rows: list[BenchRow]) -> str:
    lines = [f"{'measure':<38} {'p50':>10} {'p95':>10}  unit      note"]
    lines += [f"{row.name:<38} {row.p50:>10.2f} {row.p95:>10.2f}  {row.unit:<9} {row.note}" for row in rows]
    return "\n".join(lines)
