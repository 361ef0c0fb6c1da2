"""Triage guidance from a complaint: the department and the hospital's own rules, each cited; never a diagnosis.

The rules are sentences of a loaded knowledge base (triage_rules reads them). The complaint is
matched on its symptoms (durations and times left out). What the server decides, with no model:

- red flags: every red-flag rule of the KB (found once per KB by a scan of its sentences, never
  left to retrieval ranking) is matched against the complaint; one that fires sends the patient to
  the emergency department it names. Red flags that share a symptom with the complaint but do not
  fire are listed for the triage nurse to ask about.
- a clear rule: when the retrieved routing rules of one department, and of no other, cover every
  symptom term of the complaint that any routing rule covers ("facial swelling": the rule naming
  facial swelling, not the one naming ankle swelling), that is the department, and the rules
  naming it are quoted verbatim as guidance.

Only when the matching rules name several departments, or none matches, does the model run:
it sees the retrieved rules numbered R1..Rn and writes JSON whose grammar comes from
`output_schema`: a department from an enum of the departments those rules name (or "none"), the
ids of the rules that apply, and up to three guidance statements citing rule ids. Its department
is delivered only when a rule it marked as applying names it (a red-flag rule it marks counts as
fired); each statement is checked against the rules it cites (knowledge_base.checker) and dropped
when unsupported or when it words a diagnosis. With no evidence in the KB and no red flag, there is
no department: the triage desk decides.

The same complaint and model output give the same result, byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from appliance.grounding import Draft, KbCitation, parse_statements, sentence_citation, statements_schema
from appliance.scenarios.triage_rules import (
    RuleReading,
    department_key,
    fires,
    is_emergency,
    matches,
    read_rule,
    symptom_terms,
    symptoms_of,
    touches,
)
from knowledge_base import KnowledgeBase
from knowledge_base.answerability import Answerability
from knowledge_base.checker import check_statement
from knowledge_base.search import Sentence

Language = Literal["zh", "en"]
Urgency = Literal["emergency", "routine", "undetermined"]
DecidedBy = Literal["red_flag", "rule", "model", "none"]
RETRIEVED_CHUNKS = 4
MAX_RULES = 12  # retrieved rules shown to the model: bounds the prompt
MAX_RED_FLAGS_SHOWN = 6
MAX_APPLIES = 4
MAX_GUIDANCE = 3
MAX_GUIDANCE_CHARS = 160
MAX_TOKENS = 512
NO_DEPARTMENT = "none"
DEFAULT_EMERGENCY = {"zh": "急诊科", "en": "Emergency Department"}
DIAGNOSIS = re.compile(r"诊断|确诊|考虑为|考虑是|可能是|可能为|疑似|患有|得了|\bdiagnos|\byou have\b|\blikely\b|"
                       r"\bprobabl|\bsuggest(?:s|ive)\b|\bconsistent with\b|\bsuspect", re.IGNORECASE)
INSTRUCTIONS = {
    "en": ("You help a triage nurse. Using only the hospital's numbered rules below, pick the department the "
           "rules send this complaint to (or none), list the ids of the rules that apply, and write at most {n} "
           "short guidance statements taken from those rules, each with the ids it comes from. Never name a "
           "diagnosis.\n\n"),
    "zh": ("你协助分诊护士。仅根据下面编号的医院规则，选出规则为该主诉指定的科室（没有则选none），列出适用规则的编号，"
           "并从这些规则中写出最多{n}条简短指引，每条注明依据的规则编号。不得给出任何诊断。\n\n"),
}
REFUSAL = {"zh": "知识库中没有适用于此主诉的分诊规则，请由分诊台决定。",
           "en": "The knowledge base holds no triage rule for this complaint; the triage desk decides."}


@dataclass(frozen=True)
class Rule:
    """One sentence of the KB's guidance, as the model and the response see it."""

    id: str
    sentence: Sentence
    doc_title: str
    page: int | None
    reading: RuleReading

    def citation(self) -> KbCitation:
        return sentence_citation(self.sentence, self.doc_title, self.page)


@dataclass(frozen=True)
class TriageEvidence:
    language: Language
    complaint_terms: frozenset[str]
    answerability: Answerability
    rules: list[Rule]  # retrieved rules, then red flags sharing a symptom with the complaint
    fired: list[Rule]  # red flags the complaint fires
    matched: list[Rule]  # the routing rules that match the complaint's symptoms

    def clear_department(self) -> str | None:
        """The one department whose matching rules cover every symptom term any rule covers; else None."""
        names: dict[str, str] = {}
        cover: dict[str, set[str]] = {}
        for rule in self.matched:
            for name in rule.reading.departments:
                key = department_key(name)
                names.setdefault(key, name)
                cover.setdefault(key, set()).update(rule.reading.terms & self.complaint_terms)
        wanted = set().union(*cover.values())
        full = [key for key, terms in cover.items() if terms == wanted]
        return names[full[0]] if len(full) == 1 else None


@dataclass(frozen=True)
class TriageModelOutput:
    department: str
    applies: tuple[str, ...]
    guidance: list[Draft]


@dataclass(frozen=True)
class GuidanceItem:
    text: str
    rule_ids: list[str]


@dataclass(frozen=True)
class DroppedGuidance:
    text: str
    rule_ids: list[str]
    problems: list[str]


@dataclass(frozen=True)
class TriageResult:
    language: Language
    department: str | None
    urgency: Urgency
    decided_by: DecidedBy
    department_rules: list[str]  # ids of the rules that name the department
    guidance: list[GuidanceItem]
    red_flags_to_check: list[str]  # ids of red flags sharing a symptom with the complaint that did not fire
    rules: list[Rule]  # every rule the result refers to, in id order
    dropped: list[DroppedGuidance]
    model_department: str | None  # what the model chose, when it was not delivered
    model_output: Literal["valid", "invalid", "not_run"]
    refusal: str | None


class RedFlagIndex:
    """Every red-flag sentence of one KB, read once: a red flag must not depend on what retrieval ranks."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.rules = [(sentence, title, page, reading)
                      for sentence, section, title, page in kb.all_sentences()
                      for reading in [read_rule(sentence.text, section)] if reading.red_flag]


def gather(kb: KnowledgeBase, red_flags: RedFlagIndex, complaint: str, language: Language) -> TriageEvidence:
    """Retrieve and number the rules, fire red flags and match routing rules; run under the KB's lock."""
    symptoms = symptoms_of(complaint) or complaint
    hits = kb.search(symptoms, RETRIEVED_CHUNKS)
    answerability = kb.answerable(symptoms, hits)
    terms = symptom_terms(symptoms)
    candidates: dict[int, tuple[Sentence, str, int | None, RuleReading]] = {}
    if answerability.answerable:
        for hit in hits:
            for sentence in kb.sentences(hit.chunk_id):
                if len(candidates) < MAX_RULES:
                    candidates.setdefault(sentence.sentence_id,
                                          (sentence, hit.doc_title, hit.page, read_rule(sentence.text, hit.section)))
    touching = [entry for entry in red_flags.rules if touches(entry[3], terms)]
    firing = {entry[0].sentence_id for entry in touching if fires(entry[3], terms)}
    touching.sort(key=lambda entry: (entry[0].sentence_id not in firing, entry[0].sentence_id))
    for entry in touching[:MAX_RED_FLAGS_SHOWN]:
        candidates.setdefault(entry[0].sentence_id, entry)
    rules = [Rule(f"R{number}", *entry) for number, entry in enumerate(candidates.values(), start=1)]
    matched = [rule for rule in rules
               if rule.reading.departments and not rule.reading.red_flag and matches(rule.reading, terms)
               and not any(is_emergency(name) for name in rule.reading.departments)]
    return TriageEvidence(language, terms, answerability, rules,
                          [rule for rule in rules if rule.sentence.sentence_id in firing], matched)


def needs_model(evidence: TriageEvidence) -> bool:
    """The model runs only to choose among the rules: no red flag fired and no one department matched."""
    return (evidence.answerability.answerable and not evidence.fired
            and evidence.clear_department() is None and any(rule.reading.departments for rule in evidence.rules))


def output_schema(evidence: TriageEvidence) -> dict[str, Any]:
    """A department from the rules' own (or none), the applying rule ids, and cited guidance statements."""
    ids = [rule.id for rule in evidence.rules]
    named = list(dict.fromkeys(name for rule in evidence.rules for name in rule.reading.departments))
    return {"type": "object", "additionalProperties": False, "required": ["department", "applies", "guidance"],
            "properties": {
                "department": {"type": "string", "enum": [*named, NO_DEPARTMENT]},
                "applies": {"type": "array", "items": {"type": "string", "enum": ids}, "maxItems": MAX_APPLIES},
                "guidance": statements_schema(ids, MAX_GUIDANCE, MAX_GUIDANCE_CHARS, 2)}}


def prompt_messages(evidence: TriageEvidence, complaint: str) -> list[dict[str, str]]:
    listed = "\n".join(f"[{rule.id}] {' '.join(rule.sentence.text.split())}" for rule in evidence.rules)
    system = INSTRUCTIONS[evidence.language].format(n=MAX_GUIDANCE) + listed
    return [{"role": "system", "content": system}, {"role": "user", "content": complaint}]


def parse(output: str, evidence: TriageEvidence) -> TriageModelOutput | None:
    """The model's choice; None when the output is not the schema's shape (e.g. cut off by length)."""
    known = {rule.id for rule in evidence.rules}
    try:
        data = json.loads(output, strict=False)
        department, applies = data["department"], tuple(dict.fromkeys(data["applies"]))
        guidance = parse_statements(data["guidance"], known)
    except (ValueError, KeyError, TypeError):
        return None
    if guidance is None or not isinstance(department, str) or not set(applies) <= known:
        return None
    return TriageModelOutput(department, applies, guidance)


def assemble(evidence: TriageEvidence, chosen: TriageModelOutput | None, model_ran: bool) -> TriageResult:
    """What is delivered: the red flags', the clear rule's or a rule-backed model department, checked guidance."""
    by_id = {rule.id: rule for rule in evidence.rules}
    language = evidence.language
    applying = [by_id[rule_id] for rule_id in (chosen.applies if chosen else ())]
    fired = evidence.fired + [rule for rule in applying if rule.reading.red_flag and rule not in evidence.fired]
    department, decided_by, backing = _department(evidence, fired, applying, chosen)
    if decided_by in ("red_flag", "rule"):  # the rules themselves, verbatim, are the guidance
        key = department_key(department or "")  # the department's routing rules and its notes
        quoted = fired if decided_by == "red_flag" else [
            rule for rule in evidence.rules if key in department_key(rule.sentence.text)]
        guidance, dropped = [GuidanceItem(rule.sentence.text, [rule.id]) for rule in quoted], []
    else:
        guidance, dropped = _guidance(chosen.guidance if chosen else [], by_id)
    fired_ids = {rule.id for rule in fired}
    to_check = [rule.id for rule in evidence.rules
                if rule.id not in fired_ids and touches(rule.reading, evidence.complaint_terms)]
    referred = {*backing, *to_check, *(rule_id for item in guidance for rule_id in item.rule_ids)}
    refused = department is None and not evidence.answerability.answerable
    model_department = (chosen.department if chosen and chosen.department != NO_DEPARTMENT
                        and department_key(chosen.department) != department_key(department or "") else None)
    urgency: Urgency = {"red_flag": "emergency", "rule": "routine", "model": "routine"}.get(decided_by, "undetermined")
    return TriageResult(language, department, urgency, decided_by, [rule.id for rule in backing], guidance,
                        to_check, [rule for rule in evidence.rules if rule.id in referred], dropped, model_department,
                        "not_run" if not model_ran else ("valid" if chosen else "invalid"),
                        REFUSAL[language] if refused else None)


def _department(evidence: TriageEvidence, fired: list[Rule], applying: list[Rule],
                chosen: TriageModelOutput | None) -> tuple[str | None, DecidedBy, list[Rule]]:
    if fired:
        named = [name for rule in fired for name in rule.reading.departments if is_emergency(name)]
        return (named[0] if named else DEFAULT_EMERGENCY[evidence.language]), "red_flag", fired
    clear = evidence.clear_department()
    if clear is not None:
        return clear, "rule", [rule for rule in evidence.matched if clear in rule.reading.departments]
    if chosen is None or chosen.department == NO_DEPARTMENT:
        return None, "none", []
    key = department_key(chosen.department)
    backing = [rule for rule in applying if key in {department_key(name) for name in rule.reading.departments}]
    return (chosen.department, "model", backing) if backing else (None, "none", [])


def _guidance(drafts: Sequence[Draft], by_id: dict[str, Rule]) -> tuple[list[GuidanceItem], list[DroppedGuidance]]:
    delivered, dropped = [], []
    for draft in drafts:
        problems = [f"diagnosis: {match.group()!r} words a diagnosis, which triage never states"
                    for match in [DIAGNOSIS.search(draft.text)] if match]
        cited = [by_id[rule_id].sentence.text for rule_id in draft.cites]
        problems += list(check_statement(draft.text, cited).problems)
        if problems:
            dropped.append(DroppedGuidance(draft.text, list(draft.cites), problems))
        else:
            delivered.append(GuidanceItem(draft.text, list(draft.cites)))
    return delivered, dropped
