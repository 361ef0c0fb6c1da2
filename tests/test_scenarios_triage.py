"""Triage over a real KB of seeded synthetic rules (appliance.scenarios.triage), with scripted model outputs.

Red flags, clear rules and out-of-scope complaints are decided without a model; a complaint naming
two departments' symptoms goes to the model, whose department is delivered only when a rule it
marks as applying names it, and whose guidance is checked. The KB is built from another seed than
`orbox scenarios eval` uses, so names and phrasings differ from the eval's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.scenarios import triage
from appliance.scenarios.synthetic import Complaint, TriageGuide
from appliance.scenarios.triage_rules import departments, read_rule, symptoms_of
from knowledge_base import KnowledgeBase


@pytest.fixture(scope="module")
def kb(triage_kb: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(triage_kb) as opened:
        yield opened


@pytest.fixture(scope="module")
def red_flags(kb: KnowledgeBase) -> triage.RedFlagIndex:
    return triage.RedFlagIndex(kb)


def _complaints(guide: TriageGuide, kind: str) -> list[Complaint]:
    found = [complaint for complaint in guide.complaints if complaint.kind == kind]
    assert found
    return found


def _run(kb: KnowledgeBase, red_flags: triage.RedFlagIndex, complaint: Complaint,
         output: dict | None = None) -> tuple[triage.TriageEvidence, triage.TriageResult]:
    evidence = triage.gather(kb, red_flags, complaint.text, complaint.language)
    chosen = triage.parse(json.dumps(output, ensure_ascii=False), evidence) if output is not None else None
    return evidence, triage.assemble(evidence, chosen, output is not None)


@pytest.mark.parametrize(("text", "expected"), [
    ("胸痛伴大汗、呼吸困难或晕厥者，立即送急诊科。", ("急诊科",)),
    ("腹痛患者请前往消化内科门诊就诊。", ("消化内科门诊",)),
    ("头痛、头晕者挂神经内科。", ("神经内科",)),
    ("皮疹者到皮肤科、过敏反应科就诊。", ("皮肤科", "过敏反应科")),
    ("Refer patients with a rash to the Dermatology Clinic.", ("Dermatology Clinic",)),
    ("Patients with abdominal pain attend the Cedar Digestive Clinic or the Department of Surgery.",
     ("Cedar Digestive Clinic", "Department of Surgery")),
    ("Patients for the Amber Heart Clinic should bring their results.", ()),
])
def test_departments_are_read_after_a_routing_word(text: str, expected: tuple[str, ...]) -> None:
    assert departments(text) == expected


def test_a_red_flag_is_a_rule_sending_to_emergency_or_under_a_red_flag_heading() -> None:
    assert read_rule("Patients with chest pain and sweating must go to the Harbor Emergency Department.").red_flag
    assert read_rule("突发头痛伴呕吐。", section="红旗征象").red_flag
    assert not read_rule("腹痛患者请前往消化内科门诊就诊。").red_flag
    assert symptoms_of("瘙痒6小时。") == "瘙痒 。" and symptoms_of("Cough for 5 days since yesterday.") == "Cough ."


def test_every_red_flag_complaint_goes_to_the_emergency_department_without_a_model(
        kb: KnowledgeBase, red_flags: triage.RedFlagIndex, triage_guide: TriageGuide) -> None:
    for complaint in _complaints(triage_guide, "red_flag"):
        evidence, result = _run(kb, red_flags, complaint)
        assert not triage.needs_model(evidence)
        assert (result.department, result.urgency, result.decided_by) == (complaint.department, "emergency",
                                                                          "red_flag"), complaint
        rules = {rule.id: rule for rule in result.rules}
        assert result.department_rules and all(rules[rule_id].reading.red_flag for rule_id in result.department_rules)
        for item in result.guidance:  # the fired rules themselves, verbatim, with their exact spans
            rule = rules[item.rule_ids[0]]
            citation = rule.citation()
            assert item.text == citation.cited_text == kb.document_text(citation.doc_id)[
                citation.start_char:citation.end_char]


def test_a_red_flag_overrides_a_model_that_chose_a_routine_department(
        kb: KnowledgeBase, red_flags: triage.RedFlagIndex, triage_guide: TriageGuide) -> None:
    complaint = _complaints(triage_guide, "red_flag")[0]
    evidence = triage.gather(kb, red_flags, complaint.text, complaint.language)
    routine = next(name for rule in evidence.rules for name in rule.reading.departments
                   if not rule.reading.red_flag) if any(not r.reading.red_flag and r.reading.departments
                                                        for r in evidence.rules) else "none"
    lie = {"department": routine, "applies": [], "guidance": []}
    result = triage.assemble(evidence, triage.parse(json.dumps(lie, ensure_ascii=False), evidence), True)
    assert result.department == complaint.department and result.decided_by == "red_flag"


def test_a_clear_rule_decides_and_out_of_scope_complaints_are_left_to_the_desk(
        kb: KnowledgeBase, red_flags: triage.RedFlagIndex, triage_guide: TriageGuide) -> None:
    for complaint in _complaints(triage_guide, "routine"):
        evidence, result = _run(kb, red_flags, complaint)
        assert (result.department, result.decided_by, result.urgency) == (complaint.department, "rule", "routine")
        assert result.guidance and all(item.text in {rule.sentence.text for rule in result.rules}
                                       for item in result.guidance)
    for complaint in _complaints(triage_guide, "out_of_scope"):
        evidence, result = _run(kb, red_flags, complaint)
        assert result.department is None and result.refusal and not result.guidance, complaint
        assert not triage.needs_model(evidence)


def test_the_model_chooses_only_among_departments_its_applying_rules_name(
        kb: KnowledgeBase, red_flags: triage.RedFlagIndex, triage_guide: TriageGuide) -> None:
    decided = 0
    for complaint in _complaints(triage_guide, "ambiguous"):
        evidence = triage.gather(kb, red_flags, complaint.text, complaint.language)
        if not triage.needs_model(evidence):
            assert triage.assemble(evidence, None, False).department is None  # the gate closed: the desk decides
            continue
        decided += 1
        assert triage.output_schema(evidence)["properties"]["department"]["enum"][-1] == triage.NO_DEPARTMENT
        naming = [rule for rule in evidence.rules if complaint.department in rule.reading.departments]
        other = next(rule for rule in evidence.rules
                     if rule.reading.departments and complaint.department not in rule.reading.departments
                     and not rule.reading.red_flag)
        right = {"department": complaint.department, "applies": [naming[0].id],
                 "guidance": [{"text": naming[0].sentence.text, "cites": [naming[0].id]}]}
        result = triage.assemble(evidence, triage.parse(json.dumps(right, ensure_ascii=False), evidence), True)
        assert (result.department, result.decided_by, result.department_rules) == (
            complaint.department, "model", [naming[0].id])
        unbacked = {**right, "department": other.reading.departments[0]}  # applies names another department
        result = triage.assemble(evidence, triage.parse(json.dumps(unbacked, ensure_ascii=False), evidence), True)
        assert result.department is None and result.model_department == other.reading.departments[0]
        diagnosis = {"zh": "考虑为急性胃肠炎。", "en": "This is likely acute gastroenteritis."}[complaint.language]
        lie = {**right, "guidance": [{"text": diagnosis, "cites": [naming[0].id]}]}
        result = triage.assemble(evidence, triage.parse(json.dumps(lie, ensure_ascii=False), evidence), True)
        assert not result.guidance and result.dropped[0].problems[0].startswith("diagnosis:")
    assert decided >= 2


def test_unreadable_model_output_gives_no_department_and_the_same_input_the_same_result(
        kb: KnowledgeBase, red_flags: triage.RedFlagIndex, triage_guide: TriageGuide) -> None:
    complaint = _complaints(triage_guide, "ambiguous")[0]
    evidence = triage.gather(kb, red_flags, complaint.text, complaint.language)
    assert triage.parse('{"department": ', evidence) is None
    assert triage.parse(json.dumps({"department": "x", "applies": ["R99"], "guidance": []}), evidence) is None
    result = triage.assemble(evidence, None, True)
    assert result.department is None and result.model_output == "invalid"
    again = triage.gather(kb, red_flags, complaint.text, complaint.language)
    assert again == evidence and triage.assemble(again, None, True) == result
