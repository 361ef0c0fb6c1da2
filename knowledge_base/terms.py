"""Index terms for the FTS5 leg: jieba word segments and CJK character bigrams, side by side.

SQLite's unicode61 tokenizer sees a run of Chinese characters as one token, so 血压 would never
match 高血压; trigram misses two-character words. We therefore tokenize here, in Python, and hand
FTS5 space-separated terms: the `words` column holds jieba's segments (English lower-cased), the
`grams` column every CJK character bigram (a lone CJK character stands as itself). A query is
tokenized the same way and matches either column, so a word jieba splits differently (a fictional
drug name, a word inside a longer word) is still found through its bigrams.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import re
from pathlib import Path

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_TERM = re.compile(r"[^\W_]+")  # letters and digits; punctuation never becomes a term


@functools.cache
def jieba_tokenizer():  # lazy: jieba takes about a second to load its dictionary
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its INFO lines would go to our stderr
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def segmenter_identity() -> dict[str, str]:
    """What decides the word segments: recorded in the manifest, since another dictionary is another KB."""
    import jieba

    dictionary = Path(jieba.__file__).parent / "dict.txt"
    return {"name": "jieba", "version": importlib.metadata.version("jieba"),
            "dictionary_sha256": hashlib.sha256(dictionary.read_bytes()).hexdigest()}


def word_terms(text: str) -> list[str]:
    """jieba segments (HMM off, so the result depends only on the dictionary), lower-cased, letters/digits only."""
    terms = []
    for segment in jieba_tokenizer().cut(text, HMM=False):
        terms.extend(term.lower() for term in _TERM.findall(segment))
    return terms


def bigram_terms(text: str) -> list[str]:
    """Every pair of adjacent CJK characters; a CJK run of length one gives that character."""
    grams = []
    for run in _CJK_RUN.findall(text):
        grams.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return grams


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: any word term OR any bigram; None when the text has no term at all."""
    words = sorted(set(word_terms(text)))
    grams = sorted(set(bigram_terms(text)))
    parts = []
    if words:
        parts.append("words: (" + " OR ".join(f'"{term}"' for term in words) + ")")
    if grams:
        parts.append("grams: (" + " OR ".join(f'"{term}"' for term in grams) + ")")
    return " OR ".join(parts) or None
