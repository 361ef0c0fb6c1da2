"""The KB's SQLite file: documents (with their text), chunks, sentences and the FTS5 index.

SQLite files are not byte-reproducible by default (free pages, page order after updates, header
counters). We fix the page size, insert in one deterministic order in one transaction, merge the
FTS5 segments ('optimize') and then `VACUUM INTO` the published file, which writes every page
afresh in order. Nothing holds a timestamp. The reader opens the file read-only and immutable.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from knowledge_base.errors import KnowledgeBaseError
from knowledge_base.terms import bigram_terms, word_terms

PAGE_SIZE = 4096
SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, format TEXT NOT NULL,
                        source_sha256 TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE chunks (chunk_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
                     ordinal INTEGER NOT NULL, section TEXT NOT NULL, page INTEGER,
                     start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE sentences (sentence_id INTEGER PRIMARY KEY, chunk_id INTEGER NOT NULL REFERENCES chunks(chunk_id),
                        start_char INTEGER NOT NULL, end_char INTEGER NOT NULL);
CREATE INDEX chunks_by_doc ON chunks(doc_id, ordinal);
CREATE INDEX sentences_by_chunk ON sentences(chunk_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(words, grams, content='', tokenize='unicode61 remove_diacritics 0');
"""
SECTION_SEPARATOR = " > "
# bm25 weights of the (words, grams) columns: a whole-word match counts more than a shared bigram.
COLUMN_WEIGHTS = (2.0, 1.0)


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    doc_id: str
    doc_title: str
    section: str
    page: int | None
    start_char: int
    end_char: int
    text: str


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StoreWriter:
    """Writes one KB database; call `publish` once, after every document was added in order."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.db = sqlite3.connect(scratch, isolation_level=None)
        self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")  # a scratch file: the published copy is fsynced
        self.db.executescript(SCHEMA)
        self.db.execute("BEGIN")
        self.next_chunk_id = 1
        self.next_sentence_id = 1

    def add_document(self, doc_id: str, title: str, fmt: str, source_sha256: str, text: str,
                     chunks: Iterable[tuple[str, int | None, int, int, list[tuple[int, int]], str]]) -> list[int]:
        """Insert a document and its chunks (section, page, start, end, sentence spans, index header)."""
        self.db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", (doc_id, title, fmt, source_sha256, text))
        chunk_ids = []
        for ordinal, (section, page, start, end, sentences, header) in enumerate(chunks):
            chunk_id = self.next_chunk_id
            self.next_chunk_id += 1
            body = text[start:end]
            self.db.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (chunk_id, doc_id, ordinal, section, page, start, end, text_sha256(body)))
            for sentence_start, sentence_end in sentences:
                self.db.execute("INSERT INTO sentences VALUES (?, ?, ?, ?)",
                                (self.next_sentence_id, chunk_id, sentence_start, sentence_end))
                self.next_sentence_id += 1
            indexed = f"{header}\n{body}"
            self.db.execute("INSERT INTO chunks_fts(rowid, words, grams) VALUES (?, ?, ?)",
                            (chunk_id, " ".join(word_terms(indexed)), " ".join(bigram_terms(indexed))))
            chunk_ids.append(chunk_id)
        return chunk_ids

    def publish(self, target: Path) -> None:
        """Merge the index, then write a fresh, compact copy to `target` (which must not exist)."""
        self.db.execute("COMMIT")
        self.db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        self.db.execute("VACUUM INTO ?", (str(target),))
        self.db.close()
        self.scratch.unlink()


class StoreReader:
    """Read-only queries against a published KB database."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise KnowledgeBaseError(f"{path}: missing; not a KB directory")
        self.db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    def lexical(self, match: str, limit: int) -> list[int]:
        """Chunk ids by FTS5 bm25 (best first), ties by chunk id."""
        rows = self.db.execute(
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts, ?, ?), rowid LIMIT ?",
            (match, *COLUMN_WEIGHTS, limit)).fetchall()
        return [row[0] for row in rows]

    def chunks(self, chunk_ids: list[int]) -> dict[int, ChunkRow]:
        found: dict[int, ChunkRow] = {}
        for chunk_id in chunk_ids:
            row = self.db.execute(
                "SELECT c.chunk_id, c.doc_id, d.title, c.section, c.page, c.start_char, c.end_char, "
                "substr(d.text, c.start_char + 1, c.end_char - c.start_char) "
                "FROM chunks c JOIN documents d USING (doc_id) WHERE c.chunk_id = ?", (chunk_id,)).fetchone()
            if row is not None:
                found[chunk_id] = ChunkRow(*row)
        return found

    def document_frequency(self, column: str, term: str) -> int:
        """How many chunks hold `term` in FTS column `column` ("words" or "grams")."""
        return self.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                               (f'{column}: "{term}"',)).fetchone()[0]

    def chunk_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def documents(self) -> list[tuple[str, str, str, str, int]]:
        """(doc_id, title, format, source sha256, chunk count) in doc_id order."""
        return self.db.execute(
            "SELECT d.doc_id, d.title, d.format, d.source_sha256, count(c.chunk_id) FROM documents d "
            "LEFT JOIN chunks c USING (doc_id) GROUP BY d.doc_id ORDER BY d.doc_id").fetchall()

    def document_text(self, doc_id: str) -> str:
        row = self.db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KnowledgeBaseError(f"doc_id {doc_id!r}: no such document in this KB")
        return row[0]

    def document_chunks(self, doc_id: str) -> list[tuple[int, int, str, int | None, int, int, str]]:
        """(chunk_id, ordinal, section, page, start, end, sha256) of one document, in order."""
        return self.db.execute(
            "SELECT chunk_id, ordinal, section, page, start_char, end_char, sha256 FROM chunks "
            "WHERE doc_id = ? ORDER BY ordinal", (doc_id,)).fetchall()

    def sentence_rows(self, chunk_id: int) -> list[tuple[int, int, str, int, int, str]]:
        """(sentence_id, chunk_id, doc_id, start, end, text) of one chunk, in order."""
        return self.db.execute(
            "SELECT s.sentence_id, s.chunk_id, c.doc_id, s.start_char, s.end_char, "
            "substr(d.text, s.start_char + 1, s.end_char - s.start_char) FROM sentences s "
            "JOIN chunks c USING (chunk_id) JOIN documents d USING (doc_id) WHERE s.chunk_id = ? "
            "ORDER BY s.sentence_id", (chunk_id,)).fetchall()

    def all_sentence_rows(self) -> list[tuple[int, int, str, int, int, str, str, str, int | None]]:
        """(sentence_id, chunk_id, doc_id, start, end, text, section, doc title, page) of every sentence, in order."""
        return self.db.execute(
            "SELECT s.sentence_id, s.chunk_id, c.doc_id, s.start_char, s.end_char, "
            "substr(d.text, s.start_char + 1, s.end_char - s.start_char), c.section, d.title, c.page "
            "FROM sentences s JOIN chunks c USING (chunk_id) JOIN documents d USING (doc_id) "
            "ORDER BY s.sentence_id").fetchall()

    def sentences(self, chunk_id: int) -> list[tuple[int, int, int]]:
        """(sentence_id, start, end) of one chunk, in order."""
        return self.db.execute("SELECT sentence_id, start_char, end_char FROM sentences WHERE chunk_id = ? "
                               "ORDER BY sentence_id", (chunk_id,)).fetchall()
