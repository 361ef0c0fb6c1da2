"""A draft over the doctor's facts in fixed sections, whatever the scenario (its `DraftSpec` says which).

The model sees the facts as "[id] text" and writes JSON whose grammar comes from `output_schema`:
one array of cited items per section, the cites an enum of the request's fact ids, the first
section (主诉, a brief's one-line summary) one short item. `assemble` then decides what is
delivered, with no model involved, so a scripted generator can drive it: each item is checked
against the facts it cites (unsupported ones are dropped and reported), allergy and denial facts
the delivered items do not carry verbatim are put back verbatim, an empty section says "未提供",
and every fact no delivered item cites is listed as unused with the reason. The same facts and
model output give the same draft, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from appliance.grounding import Draft, parse_statements, statements_schema
from appliance.json_salvage import complete_prefix
from appliance.scenarios.facts import Fact, contains, must_keep
from knowledge_base.checker import check_statement

Language = Literal["zh", "en"]
Origin = Literal["model", "restored"]
MAX_ITEMS = 6  # per section (the headline: one)
MAX_ITEM_CHARS = 160
MAX_CITES = 4
MAX_TOKENS = 2048
NOT_PROVIDED = {"zh": "未提供", "en": "not provided"}
SEPARATOR = {"zh": "；", "en": "; "}  # between items that do not end a sentence themselves
TERMINAL = "。；！？.;!?"
UNUSED_REASONS = {"unused": "no item of the draft rests on it",
                  "dropped": "only items the checker could not verify against it cited it",
                  "invalid_output": "the model's output could not be read, so no item rests on it",
                  "truncated": "the token limit cut the model's output off before an item rested on it"}


@dataclass(frozen=True)
class DraftSpec:
    """One scenario: its sections (key -> title per language; the first is the headline), the headline's
    length, the instructions (with a {sections} slot), the user turn, and where a restored fact goes."""

    name: str
    sections: dict[str, dict[str, str]]
    headline_chars: dict[str, int]
    instructions: dict[str, str]
    request: dict[str, str]
    home: Callable[[Fact], str]


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
class ScenarioDraftResult:
    language: Language
    sections: list[NoteSection]
    unused_facts: list[UnusedFact]
    dropped: list[DroppedItem]
    restored: list[str]  # ids of allergy/denial facts the server put back verbatim
    model_output: Literal["valid", "truncated", "invalid"]


def warm() -> None:
    """Load the checker's dictionaries (jieba: seconds) before the first draft, which would otherwise pay for them."""
    check_statement("左侧头孢呋辛1.5 g，否认过敏", ["左侧头孢呋辛1.5 g，否认过敏"])


def output_schema(spec: DraftSpec, facts: list[Fact], language: Language) -> dict[str, Any]:
    """Per request: every section an array of items citing only these facts' ids; the headline one short item."""
    ids = [fact.id for fact in facts]
    items = min(MAX_ITEMS, len(facts))
    properties = {key: statements_schema(ids, items, MAX_ITEM_CHARS, MAX_CITES) for key in spec.sections}
    properties[next(iter(spec.sections))] = statements_schema(ids, 1, spec.headline_chars[language], MAX_CITES)
    return {"type": "object", "additionalProperties": False, "required": list(spec.sections),
            "properties": properties}


def prompt_messages(spec: DraftSpec, facts: list[Fact], language: Language) -> list[dict[str, str]]:
    """The facts in the system message as "[id] text"; the section keys with their titles so the JSON maps."""
    sections = ", ".join(f"{key} ({titles[language]})" for key, titles in spec.sections.items())
    listed = "\n".join(f"[{fact.id}] {' '.join(fact.text.split())}" for fact in facts)
    return [{"role": "system", "content": spec.instructions[language].format(sections=sections) + listed},
            {"role": "user", "content": spec.request[language]}]


def parse(spec: DraftSpec, output: str, facts: list[Fact], partial: bool = False) -> dict[str, list[Draft]] | None:
    """Each section's drafted items; None when the output is not the schema's shape (e.g. cut off by length).
    `partial`: a section the output never reached has no items."""
    known = {fact.id for fact in facts}
    try:
        sections = json.loads(output, strict=False)  # llama.cpp's string grammar lets control characters through
        parsed = [parse_statements(sections.get(key, []) if partial else sections[key], known)
                  for key in spec.sections]
    except (ValueError, KeyError, TypeError):
        return None
    return {key: items for key, items in zip(spec.sections, parsed, strict=True) if items is not None} \
        if all(items is not None for items in parsed) else None


def read(spec: DraftSpec, output: str, facts: list[Fact]) -> tuple[dict[str, list[Draft]] | None, bool]:
    """(drafts, truncated): the whole output, or the items it completed before the token limit cut it."""
    drafts = parse(spec, output, facts)
    if drafts is not None:
        return drafts, False
    salvaged = complete_prefix(output)
    drafts = parse(spec, salvaged, facts, partial=True) if salvaged is not None else None
    return drafts, drafts is not None


def assemble(spec: DraftSpec, facts: list[Fact], language: Language,
             drafts: Mapping[str, list[Draft]] | None, truncated: bool = False) -> ScenarioDraftResult:
    """What is delivered: checked items, restored allergy/denial facts, "未提供" sections, the unused facts."""
    by_id = {fact.id: fact for fact in facts}
    delivered: dict[str, list[NoteItem]] = {key: [] for key in spec.sections}
    dropped: list[DroppedItem] = []
    for key, items in (drafts or {}).items():
        for draft in items:
            problems = _problems(spec, key, draft, by_id, language)
            if problems:
                dropped.append(DroppedItem(key, draft.text, list(draft.cites), problems))
            else:
                delivered[key].append(NoteItem(draft.text, list(draft.cites), "model"))
    texts = [item.text for items in delivered.values() for item in items]
    restored = [fact for fact in facts if must_keep(fact) and not any(contains(text, fact) for text in texts)]
    for fact in restored:
        delivered[spec.home(fact)].append(NoteItem(fact.text, [fact.id], "restored"))
    cited = {fact_id for items in delivered.values() for item in items for fact_id in item.fact_ids}
    tried = {fact_id for item in dropped for fact_id in item.fact_ids}
    reason = "invalid_output" if drafts is None else ("truncated" if truncated else None)
    unused = [UnusedFact(fact.id, UNUSED_REASONS["dropped" if fact.id in tried else (reason or "unused")])
              for fact in facts if fact.id not in cited]
    sections = [NoteSection(key, titles[language], delivered[key],
                            _joined([item.text for item in delivered[key]], language) or NOT_PROVIDED[language])
                for key, titles in spec.sections.items()]
    return ScenarioDraftResult(language, sections, unused, dropped, [fact.id for fact in restored],
                               "invalid" if drafts is None else ("truncated" if truncated else "valid"))


def _joined(texts: list[str], language: Language) -> str:
    """The section's items as one text: a dictated fact rarely ends its sentence, so a separator follows it."""
    joined = ""
    for text in texts:
        if joined:
            joined += ("" if language == "zh" else " ") if joined[-1] in TERMINAL else SEPARATOR[language]
        joined += text
    return joined


def _problems(spec: DraftSpec, key: str, draft: Draft, by_id: Mapping[str, Fact], language: Language) -> list[str]:
    """Why an item cannot be delivered; none when the checker finds it supported by the facts it cites."""
    if any(ord(character) < 0x20 for character in draft.text):
        return ["text: a control character, which no fact holds"]
    limit = spec.headline_chars[language]
    if key == next(iter(spec.sections)) and len(draft.text) > limit:
        return [f"length: the {spec.sections[key][language]} has at most {limit} characters"]
    verdict = check_statement(draft.text, [by_id[fact_id].text for fact_id in draft.cites])
    return list(verdict.problems)
