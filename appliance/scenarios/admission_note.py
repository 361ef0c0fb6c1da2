"""An admission note (入院记录) drafted over the doctor's facts, in the sections of 《病历书写基本规范》.

The model sees the facts as "[id] text" and writes JSON whose grammar comes from `output_schema`:
one array of cited items per section, the cites an enum of the request's fact ids, 主诉 one item
of at most 20 characters. `assemble` then decides what is delivered, with no model involved, so a
scripted generator can drive it: each item is checked against the facts it cites (unsupported ones
are dropped and reported), allergy and denial facts the delivered items do not carry verbatim are
put back verbatim, an empty section says "未提供", and every fact no delivered item cites is listed
as unused with the reason. The same facts and model output give the same note, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from appliance.grounding import Draft, parse_statements, statements_schema
from appliance.scenarios.facts import Fact, contains, home_section, must_keep
from knowledge_base.checker import check_statement

Language = Literal["zh", "en"]
Origin = Literal["model", "restored"]
SECTIONS: dict[str, dict[str, str]] = {
    "chief_complaint": {"zh": "主诉", "en": "Chief complaint"},
    "present_illness": {"zh": "现病史", "en": "History of present illness"},
    "past_history": {"zh": "既往史", "en": "Past history (allergies included)"},
    "personal_history": {"zh": "个人史", "en": "Personal history"},
    "marital_history": {"zh": "婚育史", "en": "Marital and reproductive history"},
    "family_history": {"zh": "家族史", "en": "Family history"},
    "physical_exam": {"zh": "体格检查", "en": "Physical examination"},
    "auxiliary_exams": {"zh": "辅助检查", "en": "Investigations"},
    "diagnosis": {"zh": "初步诊断", "en": "Provisional diagnosis"},
}
CHIEF_COMPLAINT_CHARS = {"zh": 20, "en": 80}  # the standard's 20 characters are Chinese ones
MAX_ITEMS = 6  # per section (主诉: one)
MAX_ITEM_CHARS = 160
MAX_CITES = 4
NOTE_MAX_TOKENS = 2048
NOT_PROVIDED = {"zh": "未提供", "en": "not provided"}
SEPARATOR = {"zh": "", "en": " "}
UNUSED_REASONS = {"unused": "no item of the draft rests on it",
                  "dropped": "only items the checker could not verify against it cited it",
                  "invalid_output": "the model's output could not be read, so no item rests on it"}
INSTRUCTIONS = {
    "zh": ("你是病历书写助手。仅根据下面编号的事实书写入院记录，按《病历书写基本规范》分为：{sections}。"
           "每条内容注明其依据的事实编号；不得加入事实中没有的任何内容；没有事实的部分留空。主诉不超过20字。\n\n"),
    "en": ("You draft admission notes. Using only the numbered facts below, write the note in the sections "
           "{sections}. Give every item the ids of the facts it rests on; add nothing the facts do not say; leave "
           "a section empty when no fact belongs to it. The chief complaint is one short phrase.\n\n"),
}
REQUEST = {"zh": "请根据以上事实书写入院记录。", "en": "Draft the admission note from these facts."}


@dataclass(frozen=True)
class NoteItem:
    text: str
    fact_ids: list[str]
    origin: Origin


@dataclass(frozen=True)
class NoteSection:
    key: str
    title: str
    items: list[NoteItem]
    text: str  # the items joined, or NOT_PROVIDED


@dataclass(frozen=True)
class DroppedItem:
    """An item the model wrote that was not delivered, and why (the checker's problems)."""

    section: str
    text: str
    fact_ids: list[str]
    problems: list[str]


@dataclass(frozen=True)
class UnusedFact:
    id: str
    reason: str


@dataclass(frozen=True)
class AdmissionNote:
    language: Language
    sections: list[NoteSection]
    unused_facts: list[UnusedFact]
    dropped: list[DroppedItem]
    restored: list[str]  # ids of allergy/denial facts the server put back verbatim
    model_output: Literal["valid", "invalid"]


def output_schema(facts: list[Fact], language: Language) -> dict[str, Any]:
    """Per request: every section an array of items citing only these facts' ids."""
    ids = [fact.id for fact in facts]
    items = min(MAX_ITEMS, len(facts))
    properties = {key: statements_schema(ids, items, MAX_ITEM_CHARS, MAX_CITES) for key in SECTIONS}
    properties["chief_complaint"] = statements_schema(ids, 1, CHIEF_COMPLAINT_CHARS[language], MAX_CITES)
    return {"type": "object", "additionalProperties": False, "required": list(SECTIONS), "properties": properties}


def prompt_messages(facts: list[Fact], language: Language) -> list[dict[str, str]]:
    """The facts in the system message as "[id] text"; the section keys with their titles so the JSON maps."""
    sections = ", ".join(f"{key} ({titles[language]})" for key, titles in SECTIONS.items())
    listed = "\n".join(f"[{fact.id}] {' '.join(fact.text.split())}" for fact in facts)
    return [{"role": "system", "content": INSTRUCTIONS[language].format(sections=sections) + listed},
            {"role": "user", "content": REQUEST[language]}]


def parse(output: str, facts: list[Fact]) -> dict[str, list[Draft]] | None:
    """Each section's drafted items; None when the output is not the schema's shape (e.g. cut off by length)."""
    known = {fact.id for fact in facts}
    try:
        sections = json.loads(output, strict=False)  # llama.cpp's string grammar lets control characters through
        parsed = [parse_statements(sections[key], known) for key in SECTIONS]
    except (ValueError, KeyError, TypeError):
        return None
    return {key: items for key, items in zip(SECTIONS, parsed, strict=True) if items is not None} \
        if all(items is not None for items in parsed) else None


def assemble(facts: list[Fact], language: Language, drafts: Mapping[str, list[Draft]] | None) -> AdmissionNote:
    """What is delivered: checked items, restored allergy/denial facts, "未提供" sections, the unused facts."""
    by_id = {fact.id: fact for fact in facts}
    delivered: dict[str, list[NoteItem]] = {key: [] for key in SECTIONS}
    dropped: list[DroppedItem] = []
    for key, items in (drafts or {}).items():
        for draft in items:
            problems = _problems(key, draft, by_id, language)
            if problems:
                dropped.append(DroppedItem(key, draft.text, list(draft.cites), problems))
            else:
                delivered[key].append(NoteItem(draft.text, list(draft.cites), "model"))
    texts = [item.text for items in delivered.values() for item in items]
    restored = [fact for fact in facts if must_keep(fact) and not any(contains(text, fact) for text in texts)]
    for fact in restored:
        delivered[home_section(fact)].append(NoteItem(fact.text, [fact.id], "restored"))
    cited = {fact_id for items in delivered.values() for item in items for fact_id in item.fact_ids}
    tried = {fact_id for item in dropped for fact_id in item.fact_ids}
    reason = "invalid_output" if drafts is None else None
    unused = [UnusedFact(fact.id, UNUSED_REASONS[reason or ("dropped" if fact.id in tried else "unused")])
              for fact in facts if fact.id not in cited]
    sections = [NoteSection(key, titles[language], delivered[key],
                            SEPARATOR[language].join(item.text for item in delivered[key]) or NOT_PROVIDED[language])
                for key, titles in SECTIONS.items()]
    return AdmissionNote(language, sections, unused, dropped, [fact.id for fact in restored],
                         "invalid" if drafts is None else "valid")


def _problems(key: str, draft: Draft, by_id: Mapping[str, Fact], language: Language) -> list[str]:
    """Why an item cannot be delivered; none when the checker finds it supported by the facts it cites."""
    if any(ord(character) < 0x20 for character in draft.text):
        return ["text: a control character, which no fact holds"]
    if key == "chief_complaint" and len(draft.text) > CHIEF_COMPLAINT_CHARS[language]:
        return [f"length: a chief complaint has at most {CHIEF_COMPLAINT_CHARS[language]} characters"]
    verdict = check_statement(draft.text, [by_id[fact_id].text for fact_id in draft.cites])
    return list(verdict.problems)
