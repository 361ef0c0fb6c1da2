"""The bundled clinical text (English and Chinese): tokenizer/model training and the default KLD eval text."""

from __future__ import annotations

from importlib import resources

CORPUS_RESOURCE = "clinical_notes.txt"


def corpus_text() -> str:
    return resources.files("quantize").joinpath("data", CORPUS_RESOURCE).read_text(encoding="utf-8")


def corpus_lines() -> list[str]:
    return [line for line in corpus_text().splitlines() if line.strip()]
