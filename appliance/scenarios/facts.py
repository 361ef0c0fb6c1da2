"""The facts a doctor gives, and the two kinds a draft must never lose: allergies and denied history.

A drug allergy left out of an admission note can kill, and "否认…" / "denies …" is itself a
finding the doctor asked about; so these are found by plain cue words (no model, no threshold)
and the assembly puts back, verbatim, any that the model's items do not carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MustKeep = Literal["allergy", "denial"]
ALLERGY = re.compile(r"过敏|allerg|\bNKDA\b", re.IGNORECASE)
DENIAL = re.compile(r"否认|\bden(?:y|ies|ied)\b|\bno known\b|\bnegative for\b", re.IGNORECASE)
# The section a restored denial goes back to, by what it denies; anything else is past history.
DENIAL_HOMES = (
    ("family_history", re.compile(r"家族|遗传|family|hereditary", re.IGNORECASE)),
    ("personal_history", re.compile(r"吸烟|饮酒|烟酒|毒|疫区|smok|tobacco|alcohol|drink|drug use", re.IGNORECASE)),
    ("marital_history", re.compile(r"婚|育|月经|妊娠|marri|pregnan|menstru", re.IGNORECASE)),
)


@dataclass(frozen=True)
class Fact:
    id: str
    text: str


def must_keep(fact: Fact) -> MustKeep | None:
    """allergy or denial when the fact must appear in every draft (an allergy fact that denies one is an allergy)."""
    if ALLERGY.search(fact.text):
        return "allergy"
    return "denial" if DENIAL.search(fact.text) else None


def home_section(fact: Fact) -> str:
    """Where a restored fact is written: allergies under past history (《病历书写基本规范》), denials by topic."""
    if must_keep(fact) == "denial":
        return next((section for section, cue in DENIAL_HOMES if cue.search(fact.text)), "past_history")
    return "past_history"


def contains(text: str, fact: Fact) -> bool:
    """Whether `text` carries the fact verbatim (whitespace aside)."""
    return " ".join(fact.text.split()) in " ".join(text.split())
