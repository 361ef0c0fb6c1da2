"""Sentences and chunks as spans of a document's text, so every citation is an exact slice of it.

Sentences end at Chinese 。！？； (plus trailing closing quotes), at English . ! ? followed by
whitespace (so "2.5 mg" stays whole), and at line breaks. Chunks are runs of whole sentences
inside one block (one section, one page), packed up to `max_chars`; a longer sentence is a chunk
of its own rather than cut, because a cut sentence cannot be cited.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from knowledge_base.documents import Block, ParsedDocument

CJK_TERMINATORS = "。！？；"
LATIN_TERMINATORS = ".!?"
CLOSERS = "”’」』）)\"'"


@dataclass(frozen=True)
class ChunkingParameters:
    """Recorded in the manifest: a different value is a different KB."""

    max_chars: int = 400

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    section: tuple[str, ...]
    page: int | None
    sentences: tuple[Span, ...]


def _trimmed(text: str, start: int, end: int) -> Span | None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece) - len(piece.rstrip())
    return Span(start + lead, end - trail) if end - trail > start + lead else None


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans inside text[start:end], trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    begin = position = start
    while position < end:
        char = text[position]
        stop = None
        if char == "\n":
            stop = position
        elif char in CJK_TERMINATORS or (char in LATIN_TERMINATORS and (position + 1 == end
                                                                         or text[position + 1].isspace()
                                                                         or text[position + 1] in CLOSERS)):
            stop = position + 1
            while stop < end and text[stop] in CLOSERS:
                stop += 1
        if stop is None:
            position += 1
            continue
        if span := _trimmed(text, begin, stop):
            spans.append(span)
        begin = position = max(stop, position + 1)
    if span := _trimmed(text, begin, end):
        spans.append(span)
    return spans


def _pack(block: Block, sentences: list[Span], max_chars: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    group: list[Span] = []
    for sentence in sentences:
        if group and sentence.end - group[0].start > max_chars:
            chunks.append(Chunk(group[0].start, group[-1].end, block.section, block.page, tuple(group)))
            group = []
        group.append(sentence)
    if group:
        chunks.append(Chunk(group[0].start, group[-1].end, block.section, block.page, tuple(group)))
    return chunks


def chunk_document(document: ParsedDocument, parameters: ChunkingParameters) -> list[Chunk]:
    """Chunks in document order; consecutive blocks of one section and page are packed together."""
    chunks: list[Chunk] = []
    for _, group in itertools.groupby(document.blocks, key=lambda block: (block.section, block.page)):
        blocks = list(group)
        sentences = [span for block in blocks for span in split_sentences(document.text, block.start, block.end)]
        chunks.extend(_pack(blocks[0], sentences, parameters.max_chars))
    return chunks
