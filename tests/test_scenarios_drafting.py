"""Scenario schemas and assembly (appliance.scenarios.drafting) without an LLM: a scripted faithful writer,
a scripted liar (knowledge_base.mutations) and a writer that drops the allergy, all through `assemble`."""

from __future__ import annotations

import json

import jsonschema
import pytest

from appliance.grounding import Draft
from appliance.llm_generation import RequestError, schema_grammar
from appliance.scenarios import drafting
from appliance.scenarios.admission_note import ADMISSION_NOTE
from appliance.scenarios.facts import Fact, must_keep
from appliance.scenarios.patient_brief import PATIENT_BRIEF
from knowledge_base.mutations import mutants

SECTIONS = ADMISSION_NOTE.sections


def assemble(facts, language, drafts):
    return drafting.assemble(ADMISSION_NOTE, facts, language, drafts)


def parse(output, facts):
    return drafting.parse(ADMISSION_NOTE, output, facts)

ZH = [Fact("f1", "发热3天，最高体温39.2℃"), Fact("f2", "右下腹痛2天"), Fact("f3", "对青霉素过敏，表现为皮疹"),
      Fact("f4", "否认高血压、糖尿病病史"), Fact("f5", "否认家族遗传病史"), Fact("f6", "白细胞15.2×10^9/L"),
      Fact("f7", "右下腹压痛、反跳痛"), Fact("f8", "吸烟20年，每日10支")]
EN = [Fact("a", "Fever for 3 days, up to 39.2 °C"), Fact("b", "Right lower quadrant pain for 2 days"),
      Fact("c", "Allergic to penicillin (rash)"), Fact("d", "Denies hypertension and diabetes"),
      Fact("e", "White cell count 15.2 x10^9/L"), Fact("g", "No known family history of cancer")]
HOMES = {"f1": "present_illness", "f2": "present_illness", "f3": "past_history", "f4": "past_history",
         "f5": "family_history", "f6": "auxiliary_exams", "f7": "physical_exam", "f8": "personal_history",
         "a": "present_illness", "b": "present_illness", "c": "past_history", "d": "past_history",
         "e": "auxiliary_exams", "g": "family_history"}


def faithful(facts: list[Fact]) -> dict[str, list[Draft]]:
    drafts: dict[str, list[Draft]] = {key: [] for key in SECTIONS}
    for fact in facts:
        drafts[HOMES[fact.id]].append(Draft(fact.text, (fact.id,)))
    return drafts


def delivered(note) -> list[str]:
    return [item.text for section in note.sections for item in section.items]


@pytest.mark.parametrize(("facts", "language"), [(ZH, "zh"), (EN, "en")])
def test_a_faithful_draft_is_delivered_whole(facts: list[Fact], language: str) -> None:
    note = assemble(facts, language, faithful(facts))
    assert sorted(delivered(note)) == sorted(fact.text for fact in facts)
    assert not note.dropped and not note.restored and not note.unused_facts
    by_key = {section.key: section for section in note.sections}
    assert by_key["marital_history"].text == {"zh": "未提供", "en": "not provided"}[language]
    assert by_key["chief_complaint"].items == []


@pytest.mark.parametrize(("facts", "language"), [(ZH, "zh"), (EN, "en")])
def test_no_lie_of_the_scripted_liar_is_delivered_and_allergies_and_denials_survive(facts: list[Fact],
                                                                                      language: str) -> None:
    lies = 0
    for fact in facts:
        for mutant in mutants(fact.text, fact.text, ["阿莫西林", "metoprolol"]):
            drafts = faithful(facts)
            section = drafts[HOMES[fact.id]]
            section[:] = [Draft(mutant.statement, (fact.id,)) if draft.cites == (fact.id,) else draft
                          for draft in section]
            note = assemble(facts, language, drafts)
            lies += 1
            assert mutant.statement not in delivered(note), mutant
            assert [item.text for item in note.dropped] == [mutant.statement]
            for kept in filter(must_keep, facts):
                assert any(kept.text in text for text in delivered(note))
            assert (fact.id in note.restored) == bool(must_keep(fact))
    assert lies >= 2 * len(facts)


def test_a_dropped_allergy_or_denial_is_put_back_verbatim_in_its_section() -> None:
    drafts = faithful(ZH)
    for key in ("past_history", "family_history"):
        drafts[key] = []
    note = assemble(ZH, "zh", drafts)
    by_key = {section.key: section for section in note.sections}
    assert note.restored == ["f3", "f4", "f5"]
    assert [(item.text, item.origin) for item in by_key["past_history"].items] == [
        ("对青霉素过敏，表现为皮疹", "restored"), ("否认高血压、糖尿病病史", "restored")]
    assert by_key["family_history"].text == "否认家族遗传病史"
    assert by_key["past_history"].text == "对青霉素过敏，表现为皮疹；否认高血压、糖尿病病史"  # joined as sentences
    assert not note.unused_facts


def test_control_characters_the_grammar_let_through_do_not_make_the_output_unreadable() -> None:
    items = {key: [] for key in SECTIONS} | {"diagnosis": [{"text": "\x19", "cites": ["f1"]}]}
    assert parse(json.dumps(items).replace("\\u0019", "\x19"), ZH)["diagnosis"] == [Draft("\x19", ("f1",))]


def test_unreadable_output_still_carries_allergies_and_lists_every_other_fact_as_unused() -> None:
    note = assemble(ZH, "zh", parse('{"chief_complaint": [', ZH))
    assert note.model_output == "invalid" and note.restored == ["f3", "f4", "f5"]
    assert {fact.id for fact in note.unused_facts} == {"f1", "f2", "f6", "f7", "f8"}
    assert {section.text for section in note.sections if not section.items} == {"未提供"}


def test_a_long_chief_complaint_and_an_unsupported_number_are_dropped_with_reasons() -> None:
    drafts = faithful(ZH)
    drafts["chief_complaint"] = [Draft("发热3天，右下腹痛2天，伴恶心呕吐，食欲下降明显", ("f1", "f2"))]
    drafts["present_illness"].append(Draft("最高体温40℃", ("f1",)))
    drafts["diagnosis"].append(Draft("\x19\x19", ("f2",)))
    note = assemble(ZH, "zh", drafts)
    assert [item.problems[0].split(":")[0] for item in note.dropped] == ["length", "number", "text"]
    assert not note.unused_facts


def test_the_schema_cites_only_the_given_ids_and_compiles_to_a_grammar() -> None:
    schema = drafting.output_schema(ADMISSION_NOTE, ZH, "zh")
    schema_grammar(schema)
    good = {key: [] for key in SECTIONS} | {"chief_complaint": [{"text": "发热3天", "cites": ["f1"]}]}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good | {"diagnosis": [{"text": "阑尾炎", "cites": ["f99"]}]}, schema)
    assert parse(json.dumps(good | {"diagnosis": [{"text": "x", "cites": ["f99"]}]}), ZH) is None
    assert parse(json.dumps(good), ZH)["chief_complaint"] == [Draft("发热3天", ("f1",))]
    with pytest.raises(RequestError):
        schema_grammar({"type": "string", "pattern": "(("})


def test_a_patient_brief_restores_allergies_under_alerts_and_drops_lies_the_same_way() -> None:
    drafts = {key: [] for key in PATIENT_BRIEF.sections} | {
        "summary": [Draft("发热3天，右下腹痛2天", ("f1", "f2"))],
        "active_problems": [Draft("白细胞16.2×10^9/L", ("f6",))]}
    note = drafting.assemble(PATIENT_BRIEF, ZH, "zh", drafts)
    by_key = {section.key: section for section in note.sections}
    assert by_key["summary"].text == "发热3天，右下腹痛2天"
    assert [item.problems[0].split(":")[0] for item in note.dropped] == ["number"]
    assert by_key["alerts"].text == "对青霉素过敏，表现为皮疹"
    assert [item.text for item in by_key["background"].items] == ["否认高血压、糖尿病病史", "否认家族遗传病史"]
    assert by_key["pending"].text == "未提供"
    schema_grammar(drafting.output_schema(PATIENT_BRIEF, ZH, "zh"))


def test_a_draft_cut_off_at_the_token_limit_keeps_the_items_it_completed() -> None:
    whole = json.dumps({key: [{"text": draft.text, "cites": list(draft.cites)} for draft in items]
                        for key, items in faithful(ZH).items()}, ensure_ascii=False)
    cut = whole[:whole.index("否认家族遗传病史") + 3]  # inside family history's item, after past history's
    drafts, truncated = drafting.read(ADMISSION_NOTE, cut, ZH)
    note = drafting.assemble(ADMISSION_NOTE, ZH, "zh", drafts, truncated)
    assert truncated and note.model_output == "truncated"
    assert {"f1", "f2", "f3", "f4", "f8"} <= {fact_id for s in note.sections for i in s.items for fact_id in i.fact_ids}
    by_key = {section.key: section for section in note.sections}
    assert by_key["family_history"].items[0].origin == "restored"  # the cut item's denial comes back verbatim
    reasons = {fact.id: fact.reason for fact in note.unused_facts}
    assert set(reasons) == {"f6", "f7"} and set(reasons.values()) == {drafting.UNUSED_REASONS["truncated"]}
    assert drafting.read(ADMISSION_NOTE, whole, ZH) == (drafting.parse(ADMISSION_NOTE, whole, ZH), False)
    assert drafting.read(ADMISSION_NOTE, '{"chief_complaint": [{"te', ZH) == (None, False)
