"""Negation and laterality cues in English and Chinese: which words flip a clause, which words name a side.

Negation is counted, not parsed: a clause's polarity is the parity of its cues, so "not
contraindicated" is affirmative and 不得 is one negation. Chinese words that hold a cue character
without negating anything (不良反应 adverse reaction, 肾功能不全 renal insufficiency, 无菌 sterile,
禁食 fasting) are matched first and skipped; matching is longest-first, so 禁忌 is one cue, not two.
"contraindicated" counts as a negation of "indicated", since flipping one into the other is the
lie that matters. 左右 ("about", as in 40 mg 左右) names no side.
"""

from __future__ import annotations

import re

EN_NEGATIONS = ("not", "no", "never", "without", "none", "nor", "neither", "cannot", "avoid", "avoided",
                "contraindicated", "contraindication", "contraindications")
EN_NEGATION = re.compile(r"\b(?:" + "|".join(EN_NEGATIONS) + r")\b|n't\b", re.IGNORECASE)
ZH_NEGATIONS = ("禁忌", "严禁", "禁止", "禁用", "否认", "避免", "没有", "不", "无", "未", "禁", "忌", "勿", "非", "没",
                "别", "莫")
ZH_NOT_NEGATIONS = ("不良", "不全", "不适", "不足", "不齐", "不宁", "不规则", "不稳定", "无菌", "无痛", "禁食", "禁饮",
                    "禁水", "非甾体")
_ZH_CUE = re.compile("|".join(sorted(ZH_NEGATIONS + ZH_NOT_NEGATIONS, key=lambda cue: (-len(cue), cue))))
CUE_CHARACTERS = frozenset("".join(ZH_NEGATIONS))

EN_SIDES = {"left": "left", "right": "right", "bilateral": "bilateral", "bilaterally": "bilateral",
            "both sides": "bilateral"}
ZH_SIDES = {"双侧": "bilateral", "两侧": "bilateral", "左": "left", "右": "right"}
_EN_SIDE = re.compile(r"\b(?:" + "|".join(sorted(EN_SIDES, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_ZH_SIDE = re.compile("左右|双侧|两侧|左|右")
SIDE_CHARACTERS = frozenset("左右双两侧")


def negation_count(text: str) -> int:
    """How many negation cues the text holds (English and Chinese alike)."""
    chinese = sum(1 for match in _ZH_CUE.finditer(text) if match.group() not in ZH_NOT_NEGATIONS)
    return len(EN_NEGATION.findall(text)) + chinese


def negated(text: str) -> bool:
    return negation_count(text) % 2 == 1


def sides(text: str) -> frozenset[str]:
    """The sides a text names: left, right, bilateral."""
    named = {EN_SIDES[match.group().lower()] for match in _EN_SIDE.finditer(text)}
    named.update(ZH_SIDES[match.group()] for match in _ZH_SIDE.finditer(text) if match.group() != "左右")
    return frozenset(named)
