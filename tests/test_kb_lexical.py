"""The FTS5 leg: Chinese words inside longer words, drug names inside sentences, reproducible bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from knowledge_base.store import StoreReader, StoreWriter
from knowledge_base.terms import fts_query

DOCUMENTS = {
    "a.txt": "高血压患者禁用佐阿伐他汀。",
    "b.txt": "低血糖时立即口服葡萄糖。",
    "c.txt": "Do not give Zorarivastin together with Quinemab.",
    "d.txt": "Store every vial below 25 °C.",
}


def _store(path: Path) -> StoreReader:
    writer = StoreWriter(path.with_suffix(".scratch"))
    for doc_id, text in DOCUMENTS.items():
        writer.add_document(doc_id, doc_id, "txt", "0" * 64, text, [("", None, 0, len(text), [(0, len(text))], "")])
    writer.publish(path)
    return StoreReader(path)


def _found(store: StoreReader, query: str) -> list[str]:
    match = fts_query(query)
    return [] if match is None else [store.chunks([i])[i].doc_id for i in store.lexical(match, 10)]


def test_a_word_inside_a_longer_chinese_word_is_found(tmp_path: Path) -> None:
    store = _store(tmp_path / "kb.sqlite")
    assert _found(store, "血压") == ["a.txt"]  # 血压 is inside 高血压
    assert _found(store, "血糖") == ["b.txt"]


def test_a_fictional_drug_name_inside_a_sentence_is_found(tmp_path: Path) -> None:
    store = _store(tmp_path / "kb.sqlite")
    assert _found(store, "佐阿伐他汀的禁忌") == ["a.txt"]  # not in jieba's dictionary: found through bigrams
    assert _found(store, "QUINEMAB") == ["c.txt"]  # English terms are case-folded
    assert _found(store, "？！") == []  # punctuation alone is no query


def test_plain_unicode61_misses_what_the_bigram_column_finds(tmp_path: Path) -> None:
    """Why the KB tokenizes itself: SQLite's default tokenizer sees 高血压患者禁用佐阿伐他汀 as one token."""
    db = sqlite3.connect(tmp_path / "plain.sqlite")
    db.execute("CREATE VIRTUAL TABLE plain USING fts5(text)")
    db.executemany("INSERT INTO plain(text) VALUES (?)", [(text,) for text in DOCUMENTS.values()])
    assert db.execute("SELECT rowid FROM plain WHERE plain MATCH '\"血压\"'").fetchall() == []
    assert _found(_store(tmp_path / "kb.sqlite"), "血压") == ["a.txt"]


def test_identical_inputs_give_an_identical_database(tmp_path: Path) -> None:
    _store(tmp_path / "one.sqlite").close()
    _store(tmp_path / "two.sqlite").close()
    assert (tmp_path / "one.sqlite").read_bytes() == (tmp_path / "two.sqlite").read_bytes()
