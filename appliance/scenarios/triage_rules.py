"""What a sentence of the hospital's triage guidance says, read with plain patterns and no model.

A routing rule names a department after a routing word: 前往 / 转至 / 送 / 到 / 挂 ... 心内科, or
"refer to / attend / go to the Cardiology Clinic". A department is the words before a department
word (科, 门诊, 中心, 病区, 诊区; department, clinic, unit, centre, service) or 急诊 / Emergency.
An emergency department is one whose name holds 急诊, emergency, A&E or ED. A rule is a red flag
when it sends the patient to an emergency department, or when it or its section heading holds a
red-flag cue (红旗, 危险信号, 危急, 警示; red flag, warning sign). docs/scenarios.md#triage
says how a hospital writes rules the box can read.

Red flags are matched against the complaint by shared symptom terms (`symptom_terms`): the rule's
content terms (checker.content_terms) once its department names, routing words and red-flag
cues are blanked out. Over-triage is the safe error, so a rule fires on two shared terms (one when
it has only one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge_base.checker import content_terms

_DEPARTMENT_WORD_ZH = r"(?:急诊科|急诊中心|急诊|科|门诊|中心|病区|诊区)"
_ZH_NAME = (r"[\u4e00-\u9fffA-Za-z0-9]{0,10}?" + _DEPARTMENT_WORD_ZH  # the shortest name, unless a longer one
            + r"(?![\u4e00-\u9fff]{0,2}" + _DEPARTMENT_WORD_ZH + ")")  # follows: 消化内科门诊, not 消化内科
ZH_DEPARTMENT = re.compile(r"(?:前往|转至|转诊至|转入|转往|送至|送往|送入|送|到|至|去|挂号|挂|就诊于|分诊至|分诊到|由)"
                           r"(" + _ZH_NAME + r"(?:[或及和、]" + _ZH_NAME + r")*)")
_ZH_LIST = re.compile(r"(?<=[科诊心区])[或及和、]")  # the last characters of the department words
EN_DEPARTMENT = re.compile(
    r"\b(?:to|attend|visit|see|or|and)\s+(?:the\s+)?((?:[A-Za-z&'-]+\s+){0,4}?"
    r"(?:department|clinic|unit|centre|center|service)\b(?:\s+of\s+[A-Z][A-Za-z-]*)?|A&E\b|ED\b)", re.IGNORECASE)
EMERGENCY = re.compile(r"急诊|\bemergency\b|A&E|\bED\b", re.IGNORECASE)
RED_FLAG_CUE = re.compile(r"红旗|危险信号|危急|警示|red[ -]flags?|warning signs?", re.IGNORECASE)
_ROUTING_WORDS = re.compile(
    r"立即|马上|尽快|紧急|前往|转诊|转至|送往|送至|就诊|分诊|挂号|患者|出现|伴有|\b(?:immediately|urgently|refer(?:red)?|"
    r"send|sent|attend|visit|go|present(?:s|ing)?|triage[sd]?|should|must|be)\b", re.IGNORECASE)
_WHEN = re.compile(r"\d+(?:\.\d+)?\s*(?:个)?(?:小时|天|日|周|月|年|分钟|min(?:ute)?s?|h(?:ou)?rs?|days?|weeks?|"
                   r"months?|years?)|昨天|昨日|昨晚|今天|今日|今晨|前天|半天"
                   r"|\b(?:for|since|yesterday|today|tonight|this morning|last night|ago|a few|several)\b",
                   re.IGNORECASE)
FIRE_SHARED_TERMS = 2


@dataclass(frozen=True)
class RuleReading:
    """What one guidance sentence says: the departments it routes to, and whether it is a red flag."""

    departments: tuple[str, ...]
    emergency: bool  # routes to an emergency department
    red_flag: bool
    terms: frozenset[str]  # its symptom terms


def departments(text: str) -> tuple[str, ...]:
    """The departments a sentence routes to, as written, first mention first, each once (case aside)."""
    found: dict[str, str] = {}
    names = [name for match in ZH_DEPARTMENT.finditer(text) for name in _ZH_LIST.split(match.group(1))]
    names += [" ".join(match.group(1).split()) for match in EN_DEPARTMENT.finditer(text)]
    for name in names:
        found.setdefault(department_key(name), name)
    return tuple(found.values())


def department_key(name: str) -> str:
    """Two spellings of one department compare equal: case, spacing and a leading "the" aside."""
    return re.sub(r"^the\s+", "", " ".join(name.lower().split()))


def is_emergency(name: str) -> bool:
    return bool(EMERGENCY.search(name))


def read_rule(text: str, section: str = "") -> RuleReading:
    """Departments, emergency, red flag and symptom terms of one sentence (`section`: its heading)."""
    named = departments(text)
    emergency = any(is_emergency(name) for name in named)
    return RuleReading(named, emergency, emergency or bool(RED_FLAG_CUE.search(f"{section}\n{text}")),
                       symptom_terms(text, named))


def symptom_terms(text: str, named: tuple[str, ...] = ()) -> frozenset[str]:
    """Content terms once department names, routing words and red-flag cues are blanked out."""
    for name in named:
        text = text.replace(name, " ")
    return content_terms(RED_FLAG_CUE.sub(" ", _ROUTING_WORDS.sub(" ", text)))


def symptoms_of(complaint: str) -> str:
    """The complaint without its durations and times (6天, for 3 days, since yesterday): what rules are matched on."""
    return " ".join(_WHEN.sub(" ", complaint).split())


def matches(reading: RuleReading, complaint_terms: frozenset[str]) -> bool:
    """A routing rule matches when it shares a symptom term with the complaint."""
    return bool(reading.terms & complaint_terms)


def fires(reading: RuleReading, complaint_terms: frozenset[str]) -> bool:
    """A red flag applies when the complaint shares enough of its symptom terms (two; one if it has one)."""
    shared = len(reading.terms & complaint_terms)
    return reading.red_flag and shared >= min(FIRE_SHARED_TERMS, len(reading.terms)) and shared > 0


def touches(reading: RuleReading, complaint_terms: frozenset[str]) -> bool:
    """A red flag the triage nurse should check: it shares at least one symptom term with the complaint."""
    return reading.red_flag and bool(reading.terms & complaint_terms)
