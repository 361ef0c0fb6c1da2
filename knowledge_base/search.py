"""Open a KB and search it: FTS5 bm25 and exact dense legs, reciprocal rank fusion, optional reranker.

Deterministic by construction: the index files are fixed by their hashes, the query is embedded
alone (batch 1, so padding never depends on other requests), every ranking breaks ties by chunk
id, and the reranker sees the candidates in that fixed order.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inference.encoder import EncoderRuntimeError, load_encoder
from knowledge_base.answerability import (
    CALIBRATION,
    DEFAULT_THRESHOLD,
    Answerability,
    coverage,
    evidence_weights,
    query_terms,
)
from knowledge_base.dense import exact_top, load_matrix
from knowledge_base.errors import KnowledgeBaseError
from knowledge_base.fusion import reciprocal_rank_fusion
from knowledge_base.manifest import DATABASE, EMBEDDINGS, SECTION, read_kb_manifest, verify_kb
from knowledge_base.store import StoreReader
from knowledge_base.terms import fts_query
from primitives.artifacts import MANIFEST_NAME

Leg = Literal["lexical", "dense", "hybrid"]
LEGS: tuple[Leg, ...] = ("lexical", "dense", "hybrid")
CANDIDATES_PER_LEG = 50
RERANK_DEPTH = 20
MAX_TOP_K = 100
# An encoder trained on one language ranks another language's text close to randomly, and fusing a random
# ranking into a good one can only lower it; the KB records which query languages its encoder serves.
LANGUAGES = ("en", "zh")
CJK_CHARACTER = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk; `text == document_text(doc_id)[start_char:end_char]`."""

    chunk_id: int
    doc_id: str
    doc_title: str
    section: str
    page: int | None
    text: str
    start_char: int
    end_char: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sentence:
    """One sentence of a chunk, the unit a citation points at; `text == document_text(doc_id)[start_char:end_char]`."""

    sentence_id: int
    chunk_id: int
    doc_id: str
    start_char: int
    end_char: int
    text: str


class KnowledgeBase:
    """A verified, opened KB. Use `KnowledgeBase.open`."""

    def __init__(self, store: StoreReader, matrix: np.ndarray, encoder: Any, reranker: Any = None,
                 sha256: str = "", dense_languages: tuple[str, ...] = LANGUAGES,
                 threshold: float = DEFAULT_THRESHOLD, calibrated: bool = False) -> None:
        self.dense_languages = dense_languages
        self.threshold = threshold  # of the answerability gate: calibrated, or the conservative default
        self.calibrated = calibrated
        self.store = store
        self.matrix = matrix
        self.encoder = encoder
        self.reranker = reranker
        self.sha256 = sha256  # of manifest.json, which pins every file: the KB's identity in audit records

    @classmethod
    def open(cls, kb_dir: str | Path, profile: Any = None, *, verify: bool = True, pubkey: Path | None = None,
             threads: int = 1) -> KnowledgeBase:
        """Check every file's sha256 (and the signature, given a key), then load the index and encoders."""
        root = Path(kb_dir)
        manifest = read_kb_manifest(root)
        if verify:
            problems = verify_kb(root, pubkey)
            if problems:
                raise KnowledgeBaseError("refusing a KB that does not verify: " + "; ".join(problems))
        has_reranker = "reranker" in manifest["sections"][SECTION]["encoders"]
        try:
            encoder = load_encoder(root, profile, "embedding", threads)
            reranker = load_encoder(root, profile, "reranker", threads) if has_reranker else None
        except EncoderRuntimeError as exc:
            raise KnowledgeBaseError(str(exc)) from exc
        matrix = load_matrix(root / EMBEDDINGS, manifest["sections"][SECTION]["counts"]["chunks"], encoder.dim)
        sha256 = hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()
        dense_languages = tuple(manifest["sections"][SECTION]["dense_languages"])
        calibrated = CALIBRATION in manifest["artifacts"]
        threshold = _calibrated_threshold(root) if calibrated else DEFAULT_THRESHOLD
        return cls(StoreReader(root / DATABASE), matrix, encoder, reranker, sha256, dense_languages, threshold,
                   calibrated)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def lexical(self, query: str, depth: int = CANDIDATES_PER_LEG) -> list[tuple[int, float]]:
        """(chunk_id, 1/rank) by FTS5 bm25; empty when the query has no indexable term."""
        match = fts_query(query)
        ids = self.store.lexical(match, depth) if match else []
        return [(chunk_id, 1.0 / rank) for rank, chunk_id in enumerate(ids, start=1)]

    def dense(self, query: str, depth: int = CANDIDATES_PER_LEG) -> list[tuple[int, float]]:
        """(chunk_id, cosine) by exact search; the query is embedded alone (batch 1)."""
        vector = self.encoder.embed([query])[0]
        return [(row + 1, score) for row, score in exact_top(self.matrix, vector, depth)]

    def ranked(self, query: str, leg: Leg = "hybrid") -> list[tuple[int, float]]:
        """(chunk_id, score) best first for one leg, or fused (and reranked when the KB has a reranker)."""
        query = _checked_query(query)
        if leg == "lexical":
            return self.lexical(query)
        if leg == "dense":
            return self.dense(query)
        if leg != "hybrid":
            raise KnowledgeBaseError(f"leg must be one of {', '.join(LEGS)}, found {leg!r}")
        fused = self.fused(query)
        return self.reranked(query, fused) if self.reranker is not None else fused

    def fused(self, query: str) -> list[tuple[int, float]]:
        """Both legs fused by reciprocal rank; the lexical leg alone for a language the encoder does not cover."""
        legs = [[chunk_id for chunk_id, _ in self.lexical(query)]]
        if query_language(query) in self.dense_languages:
            legs.append([chunk_id for chunk_id, _ in self.dense(query)])
        return reciprocal_rank_fusion(legs)

    def reranked(self, query: str, fused: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The first RERANK_DEPTH fused candidates reordered by the reranker's score, the rest after them."""
        head = [chunk_id for chunk_id, _ in fused[:RERANK_DEPTH]]
        rows = self.store.chunks(head)
        scores = self.reranker.rerank(query, [rows[chunk_id].text for chunk_id in head])
        reranked = sorted(zip(head, map(float, scores), strict=True), key=lambda pair: (-pair[1], pair[0]))
        return reranked + fused[RERANK_DEPTH:]

    def search(self, query: str, top_k: int = 5, leg: Leg = "hybrid") -> list[SearchHit]:
        """The top_k chunks for a query, with their exact spans in the source document's text."""
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise KnowledgeBaseError(f"top_k must be an integer from 1 to {MAX_TOP_K}, found {top_k!r}")
        best = self.ranked(query, leg)[:top_k]
        rows = self.store.chunks([chunk_id for chunk_id, _ in best])
        return [SearchHit(chunk_id, row.doc_id, row.doc_title, row.section, row.page, row.text, row.start_char,
                          row.end_char, score)
                for chunk_id, score in best for row in [rows[chunk_id]]]

    def sentences(self, chunk_id: int) -> list[Sentence]:
        """The sentences of one chunk, in document order, with their exact spans."""
        rows = self.store.sentence_rows(chunk_id)
        if not rows:
            raise KnowledgeBaseError(f"chunk_id {chunk_id!r}: no such chunk in this KB")
        return [Sentence(*row) for row in rows]

    def all_sentences(self) -> list[tuple[Sentence, str, str, int | None]]:
        """Every sentence of the KB with its chunk's section, its document's title and page, in document order."""
        return [(Sentence(*row[:6]), row[6], row[7], row[8]) for row in self.store.all_sentence_rows()]

    def document_text(self, doc_id: str) -> str:
        return self.store.document_text(doc_id)

    @functools.cached_property
    def chunk_count(self) -> int:
        return self.store.chunk_count()

    def evidence_score(self, query: str, hits: list[SearchHit]) -> float:
        """The share of the query's idf that the best hit (its title, section and text) holds (`answerability`)."""
        frequency = functools.partial(_document_frequency, self.store)
        weights = evidence_weights(query_terms(_checked_query(query)), frequency, self.chunk_count)
        return coverage(weights, (f"{hit.doc_title}\n{hit.section}\n{hit.text}" for hit in hits))

    def answerable(self, query: str, hits: list[SearchHit]) -> Answerability:
        """Whether the hits are evidence enough to answer at all; a refusal needs no LLM call."""
        score = self.evidence_score(query, hits)
        return Answerability(score >= self.threshold, score, self.threshold)


@functools.lru_cache(maxsize=65536)
def _document_frequency(store: StoreReader, term: tuple[str, str]) -> int:
    return store.document_frequency(*term)


def _calibrated_threshold(root: Path) -> float:
    path = root / CALIBRATION
    try:
        threshold = json.loads(path.read_text(encoding="utf-8"))["threshold"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KnowledgeBaseError(f"{path}: expected a JSON object with a numeric 'threshold' ({exc})") from exc
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0 + 1e-6:
        raise KnowledgeBaseError(f"{path}: field 'threshold' must be a number from 0 to 1, found {threshold!r}")
    return float(threshold)


def query_language(text: str) -> str:
    """"zh" when the text holds any CJK character, else "en": the split that decides whether the dense leg helps."""
    return "zh" if CJK_CHARACTER.search(text) else "en"


def _checked_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise KnowledgeBaseError("query is empty; expected a question or keywords")
    return query.strip()
