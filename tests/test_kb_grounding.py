"""appliance.grounding without a server: a scripted generator's statements through the checker and the
citation builder, and the model's output contract (schema and parsing)."""

from __future__ import annotations

import json

import pytest

from appliance.grounding import Draft, Evidence, Source, deliver, output_schema, parse_drafts, quote_drafts
from knowledge_base import KnowledgeBase
from knowledge_base.answerability import Answerability

QUESTION = "What is the adult dose of Breisartan for Hollin syndrome?"


@pytest.fixture(scope="module")
def evidence(synthetic_kb) -> Evidence:
    with KnowledgeBase.open(synthetic_kb, verify=False) as kb:
        hits = kb.search(QUESTION, 3)
        sources = [Source(f"S{n}", sentence, hit) for n, (sentence, hit) in
                   enumerate(((s, hit) for hit in hits for s in kb.sentences(hit.chunk_id)), start=1)]
    return Evidence(QUESTION, "en", hits, Answerability(True, 1.0, 0.5), sources)


def _dose_source(evidence: Evidence) -> Source:
    return next(s for s in evidence.sources if "adult dose of Breisartan" in s.sentence.text)


def test_a_lie_is_dropped_and_the_faithful_statement_is_delivered_with_exact_spans(evidence: Evidence) -> None:
    source = _dose_source(evidence)
    faithful = source.sentence.text
    lie = faithful.replace("40 mg", "400 mg")
    assert lie != faithful
    answer = deliver([Draft(lie, (source.id,)), Draft(faithful, (source.id,))], evidence)
    assert [check.supported for check in answer.checks] == [False, True]
    assert answer.checks[0].problems[0].startswith("number")
    assert answer.content == faithful and answer.refusal is None
    (annotation,) = answer.annotations
    assert answer.content[annotation.start_index:annotation.end_index] == faithful
    assert annotation.kb_citation.cited_text == faithful and annotation.kb_citation.chunk_id == source.hit.chunk_id


def test_nothing_supported_is_a_refusal(evidence: Evidence) -> None:
    source = _dose_source(evidence)
    answer = deliver([Draft(source.sentence.text.replace("40 mg", "4 mg"), (source.id,))], evidence)
    assert answer.content is None and answer.annotations == [] and answer.refusal_code == "unsupported"
    assert deliver(None, evidence).refusal_code == "invalid_output"


def test_the_schema_offers_exactly_the_ids_shown_and_parsing_refuses_anything_else(evidence: Evidence) -> None:
    schema = output_schema(evidence)
    cite = schema["properties"]["statements"]["items"]["properties"]["cites"]["items"]
    assert cite["enum"] == [source.id for source in evidence.sources]
    good = json.dumps({"statements": [{"text": "x", "cites": ["S1", "S1"]}]})
    assert parse_drafts(good, evidence) == [Draft("x", ("S1",))]
    assert parse_drafts(json.dumps({"statements": [{"text": "x", "cites": ["S99"]}]}), evidence) is None
    assert parse_drafts(good[:-5], evidence) is None  # cut off by max_tokens


def test_quote_mode_picks_the_best_matching_sentences_verbatim(evidence: Evidence) -> None:
    (draft,) = quote_drafts(evidence)
    assert draft.text == _dose_source(evidence).sentence.text
