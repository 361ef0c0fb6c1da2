"""Grounded answers from a knowledge base (issue 15): the server decides what is cited, the checker what is delivered.

answer mode: retrieve the question's chunks, ask the KB's answerability gate (a refusal, before any
LLM call, when there is no evidence), number the chunks' sentences S1..Sn, and let the LLM write
JSON whose grammar is generated per request from `output_schema`: at most MAX_STATEMENTS statements,
each citing 1..MAX_CITES ids from an enum of exactly the ids it was shown, so it cannot cite
anything else. Each statement is then checked (knowledge_base.checker) against the sentences it
cites; unsupported ones are dropped, and with none left the answer is a refusal. The citations
(document, chunk, span, cited text) are filled in here from the KB, never taken from the model.

quote mode: the answer is the retrieved sentences themselves, verbatim, and no LLM runs. Choosing
which sentences to quote is a ranking problem that the KB's own terms solve deterministically in
milliseconds (`quote_drafts`); letting a model pick ids would add seconds, a dependency on the LLM
worker (paused when the box is hot) and a random choice by a weak model, and could add no text anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from knowledge_base import KnowledgeBase, SearchHit
from knowledge_base.answerability import Answerability
from knowledge_base.checker import check_statement
from knowledge_base.search import Sentence, query_language
from knowledge_base.terms import bigram_terms, word_terms

Mode = Literal["answer", "quote"]
RETRIEVED_CHUNKS = 3
MAX_SOURCES = 12  # numbered sentences shown to the model: bounds the prompt
MAX_STATEMENTS = 3
MAX_CITES = 3
MAX_STATEMENT_CHARS = 160
ANSWER_MAX_TOKENS = 640  # room for the largest JSON the grammar allows in plain text
MAX_QUOTES = 3
SEPARATOR = {"en": " ", "zh": ""}
REFUSALS: dict[str, dict[str, str]] = {
    "no_evidence": {
        "en": "The knowledge base holds no passage that answers this question, so no answer is given.",
        "zh": "知识库中没有能回答此问题的内容，因此不作回答。"},
    "unsupported": {
        "en": "No statement of the answer could be verified against the sources it cites, so no answer is given.",
        "zh": "回答中没有任何陈述能与其引用的来源核对一致，因此不作回答。"},
    "invalid_output": {
        "en": "The model's answer could not be read as cited statements, so no answer is given.",
        "zh": "无法将模型的回答解析为带引用的陈述，因此不作回答。"},
}
INSTRUCTIONS = {
    "en": ("Answer the question using only the numbered source sentences below. Write at most {n} short "
           "statements and give each the ids of the sentences it comes from. If the sources do not answer the "
           "question, write no statement.\n\n"),
    "zh": ("仅根据下面编号的来源句子回答问题。最多写{n}条简短陈述，并为每条注明其依据的句子编号。"
           "如果来源不能回答问题，不要写任何陈述。\n\n"),
}


@dataclass(frozen=True)
class Source:
    """One numbered sentence the model (or quote mode) may cite, with the chunk it was retrieved in."""

    id: str
    sentence: Sentence
    hit: SearchHit


@dataclass(frozen=True)
class Evidence:
    query: str
    language: str
    hits: list[SearchHit]
    answerability: Answerability
    sources: list[Source]


@dataclass(frozen=True)
class Draft:
    """A statement before checking: its text and the ids of the sources it cites."""

    text: str
    cites: tuple[str, ...]


@dataclass(frozen=True)
class StatementCheck:
    """The checker's verdict on one drafted statement (the response's `orbox.verdicts`)."""

    text: str
    cites: list[str]
    supported: bool
    problems: list[str]


@dataclass(frozen=True)
class KbCitation:
    """`cited_text == document_text(doc_id)[start_char:end_char]`."""

    doc_id: str
    doc_title: str
    chunk_id: int
    start_char: int
    end_char: int
    cited_text: str
    page: int | None


@dataclass(frozen=True)
class KbCitationAnnotation:
    """`content[start_index:end_index]` is the statement that `kb_citation` supports."""

    start_index: int
    end_index: int
    kb_citation: KbCitation
    type: Literal["kb_citation"] = "kb_citation"


@dataclass(frozen=True)
class GroundedAnswer:
    content: str | None
    refusal: str | None
    refusal_code: str | None
    annotations: list[KbCitationAnnotation] = field(default_factory=list)
    checks: list[StatementCheck] = field(default_factory=list)


def gather(kb: KnowledgeBase, query: str) -> Evidence:
    """Retrieve, gate, and (when answerable) number the retrieved chunks' sentences; run under the KB's lock."""
    hits = kb.search(query, RETRIEVED_CHUNKS)
    answerability = kb.answerable(query, hits)
    sources: list[Source] = []
    if answerability.answerable:
        sentences = [(sentence, hit) for hit in hits for sentence in kb.sentences(hit.chunk_id)]
        sources = [Source(f"S{number}", sentence, hit)
                   for number, (sentence, hit) in enumerate(sentences[:MAX_SOURCES], start=1)]
    return Evidence(query, query_language(query), hits, answerability, sources)


def prompt_messages(evidence: Evidence) -> list[dict[str, str]]:
    """The chat the LLM sees: the numbered sources in the system message, the question as the user's."""
    listed = "\n".join(f"[{source.id}] {' '.join(source.sentence.text.split())}" for source in evidence.sources)
    system = INSTRUCTIONS[evidence.language].format(n=MAX_STATEMENTS) + listed
    return [{"role": "system", "content": system}, {"role": "user", "content": evidence.query}]


def statements_schema(ids: list[str], max_statements: int, max_chars: int = MAX_STATEMENT_CHARS,
                      max_cites: int = MAX_CITES) -> dict[str, Any]:
    """An array of cited statements whose cites are an enum of `ids`, so the grammar cannot cite anything else."""
    cite = {"type": "string", "enum": ids}
    statement = {"type": "object", "additionalProperties": False, "required": ["text", "cites"], "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
        "cites": {"type": "array", "items": cite, "minItems": 1, "maxItems": max_cites}}}
    return {"type": "array", "items": statement, "minItems": 0, "maxItems": max_statements}


def output_schema(evidence: Evidence) -> dict[str, Any]:
    """The JSON schema the LLM's grammar is generated from: bounded counts, cites from the ids shown only."""
    statements = statements_schema([source.id for source in evidence.sources], MAX_STATEMENTS)
    return {"type": "object", "additionalProperties": False, "required": ["statements"],
            "properties": {"statements": statements}}


def parse_statements(items: Any, known: set[str]) -> list[Draft] | None:
    """Drafts from a JSON array of {text, cites}; None unless every item has that shape and cites known ids only."""
    try:
        drafts = [Draft(item["text"].strip(), tuple(dict.fromkeys(item["cites"]))) for item in items]
    except (KeyError, TypeError, AttributeError):
        return None
    if not all(draft.cites and set(draft.cites) <= known for draft in drafts):
        return None
    return drafts


def parse_drafts(output: str, evidence: Evidence) -> list[Draft] | None:
    """The statements of the model's JSON; None when it is not the schema's shape (e.g. cut off by length)."""
    try:
        statements = json.loads(output)["statements"]
    except (ValueError, KeyError, TypeError):
        return None
    return parse_statements(statements, {source.id for source in evidence.sources})


def quote_drafts(evidence: Evidence) -> list[Draft]:
    """The sources sharing the most index terms with the question (words count twice), verbatim; ties are all
    quoted (at most MAX_QUOTES), in source order, since a near miss is often a neighbouring drug's dose."""
    words, grams = set(word_terms(evidence.query)), set(bigram_terms(evidence.query))

    def overlap(source: Source) -> int:
        text = source.sentence.text
        return 2 * len(words & set(word_terms(text))) + len(grams & set(bigram_terms(text)))

    scores = [overlap(source) for source in evidence.sources]
    best = max(scores, default=0)
    chosen = [source for source, score in zip(evidence.sources, scores, strict=True) if best and score == best]
    return [Draft(source.sentence.text, (source.id,)) for source in chosen[:MAX_QUOTES]]


def deliver(drafts: list[Draft] | None, evidence: Evidence) -> GroundedAnswer:
    """Check every draft against the sentences it cites; the supported ones, joined, with their citations."""
    if drafts is None:
        return refusal("invalid_output", evidence.language)
    by_id = {source.id: source for source in evidence.sources}
    checks = []
    for draft in drafts:
        verdict = check_statement(draft.text, [by_id[cite].sentence.text for cite in draft.cites])
        checks.append(StatementCheck(draft.text, list(draft.cites), bool(draft.text) and verdict.supported,
                                     list(verdict.problems) if draft.text else ["empty statement"]))
    supported = [check for check in checks if check.supported]
    if not supported:
        return refusal("unsupported", evidence.language, checks)
    separator, content, annotations = SEPARATOR[evidence.language], "", []
    for check in supported:
        content += separator if content else ""
        start = len(content)
        content += check.text
        annotations += [KbCitationAnnotation(start, len(content), citation(by_id[cite])) for cite in check.cites]
    return GroundedAnswer(content, None, None, annotations, checks)


def refusal(code: str, language: str, checks: list[StatementCheck] | None = None) -> GroundedAnswer:
    """The fixed, localised reason for `code`; no content and no citation."""
    return GroundedAnswer(None, REFUSALS[code][language], code, [], checks or [])


def citation(source: Source) -> KbCitation:
    return sentence_citation(source.sentence, source.hit.doc_title, source.hit.page)


def sentence_citation(sentence: Sentence, doc_title: str, page: int | None) -> KbCitation:
    """Where a sentence sits in its source document; filled in from the KB, never from a model."""
    return KbCitation(sentence.doc_id, doc_title, sentence.chunk_id, sentence.start_char, sentence.end_char,
                      sentence.text, page)
