"""Numbers with their units, in English and Chinese text, normalised so that "5mg", "5 mg" and "五毫克" compare equal.

The checker needs one question answered: does this number, with this unit, appear in the cited
text? So a quantity is (value, unit) with the value as a canonical decimal string (2.50 -> 2.5,
1,000 -> 1000) and the unit as a canonical spelling (μg, µg, ug, microgram -> mcg; 小时, hr -> h).
Ranges ("5-10 mg", "5至10毫克") give one quantity per end, each with the range's unit. Word
numbers (once, twice, two; 一次, 两名) count as numbers, since "once daily" is a dose frequency.
A number glued to letters (B12, H2, IL-6's "IL") belongs to a name, not a quantity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# canonical unit -> spellings (matched case-insensitively, longest first)
UNIT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "mg": ("mg", "milligram", "milligrams", "毫克"),
    "mcg": ("mcg", "μg", "µg", "ug", "microgram", "micrograms", "微克"),
    "g": ("g", "gram", "grams", "克"),
    "kg": ("kg", "kilogram", "kilograms", "千克", "公斤"),
    "ml": ("ml", "millilitre", "millilitres", "milliliter", "milliliters", "毫升"),
    "l": ("l", "litre", "litres", "liter", "liters", "升"),
    "units": ("units", "unit", "u", "单位"),
    "iu": ("iu", "国际单位"),
    "mmol": ("mmol", "毫摩尔"),
    "mmhg": ("mmhg", "毫米汞柱"),
    "%": ("%", "percent", "％"),
    "°c": ("°c", "℃", "° c", "degrees celsius", "摄氏度"),
    "h": ("h", "hr", "hrs", "hour", "hours", "小时", "个小时"),
    "min": ("min", "mins", "minute", "minutes", "分钟"),
    "s": ("sec", "secs", "second", "seconds", "秒"),
    "d": ("d", "day", "days", "天", "日"),
    "wk": ("wk", "wks", "week", "weeks", "周", "星期"),
    "mo": ("month", "months", "个月"),
    "y": ("year", "years", "年", "岁"),
    "times": ("times", "time", "x", "次"),
    "tablet": ("tablet", "tablets", "tab", "tabs", "片"),
    "capsule": ("capsule", "capsules", "粒"),
    "drop": ("drop", "drops", "滴"),
    "person": ("名", "人", "位"),
    "item": ("个", "项", "例", "支", "袋", "瓶", "倍"),
}
_CANONICAL = {spelling.lower(): unit for unit, spellings in UNIT_SPELLINGS.items() for spelling in spellings}
_UNIT = "|".join(re.escape(s) for s in sorted(_CANONICAL, key=lambda s: (-len(s), s)))
# A Latin unit must end at a non-letter ("5 mg" but not "5 mgx"); a CJK unit needs no boundary.
_UNIT_TOKEN = rf"(?:{_UNIT})(?![A-Za-z])"
_COMPOUND_UNIT = rf"{_UNIT_TOKEN}(?:\s*/\s*{_UNIT_TOKEN})*"

_WORD_NUMBERS = {"once": ("1", "times"), "twice": ("2", "times"), "thrice": ("3", "times")}
_EN_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve"]
_WORD_NUMBERS.update({word: (str(value), "") for value, word in enumerate(_EN_NUMBERS)})
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_ZH_SCALES = {"十": 10, "百": 100, "千": 1000, "万": 10000}

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_ZH_NUMERAL = "[零〇一二两三四五六七八九十百千万]+"
_RANGE = r"\s*(?:-|–|—|~|～|to|至|到)\s*"
_NUMBER = rf"(?:{_DIGITS}|{_ZH_NUMERAL}|\b(?:{'|'.join(_WORD_NUMBERS)})\b)"
QUANTITY = re.compile(
    rf"(?<![A-Za-z0-9.\-])(?P<first>{_NUMBER})(?:{_RANGE}(?P<second>{_NUMBER}))?(?:\s*(?P<unit>{_COMPOUND_UNIT}))?",
    re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    value: str  # canonical decimal
    unit: str  # canonical unit, "" when the number has none
    start: int  # span of the whole match in the text it was read from
    end: int

    def __str__(self) -> str:
        return f"{self.value} {self.unit}".strip()


def _zh_value(numeral: str) -> int:
    """一 -> 1, 十二 -> 12, 二十五 -> 25, 三百 -> 300; digits alone ("一五") read positionally."""
    if not any(char in _ZH_SCALES for char in numeral):
        return int("".join(str(_ZH_DIGITS[char]) for char in numeral))
    total, current = 0, 0
    for char in numeral:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        else:
            total += (current or 1) * _ZH_SCALES[char]
            current = 0
    return total + current


def _canonical_value(number: str) -> tuple[str, str]:
    """(canonical decimal, implied unit) of one number as written."""
    lowered = number.lower()
    if lowered in _WORD_NUMBERS:
        return _WORD_NUMBERS[lowered]
    if re.fullmatch(_ZH_NUMERAL, number):
        return str(_zh_value(number)), ""
    text = format(Decimal(number.replace(",", "")).normalize(), "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text), ""


def canonical_unit(unit: str) -> str:
    """'mg / kg' -> 'mg/kg', 'μg' -> 'mcg'; each part canonicalised."""
    return "/".join(_CANONICAL[re.sub(r"\s+", " ", part.strip().lower())] for part in unit.split("/"))


def quantities(text: str) -> list[Quantity]:
    """Every quantity in text, in order. A bare Chinese numeral counts only with a unit (一线 is not a number)."""
    found = []
    for match in QUANTITY.finditer(text):
        unit = canonical_unit(match["unit"]) if match["unit"] else ""
        numbers = [match["first"]] + ([match["second"]] if match["second"] else [])
        if not unit and any(re.fullmatch(_ZH_NUMERAL, number) for number in numbers):
            continue
        for number in numbers:
            value, implied = _canonical_value(number)
            found.append(Quantity(value, unit or implied, match.start(), match.end()))
    return found
