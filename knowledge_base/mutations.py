"""A scripted lying generator: faithful restatements of a source sentence, and one lie per class from each.

The mutation suite of `orbox kb eval` runs the checker on what this writes. Faithful variants keep
every fact: the sentence itself, its clauses reordered, its leading phrase dropped (a weaker
statement, still true), function words swapped for synonyms. The lies, one class each:

- number: the first number written in digits (else a word number: once, 一次) changed to a value
  the source does not hold;
- drug: a drug of another document substituted for the sentence's drug, or added when it names none;
- negation: the first negation cue removed (contraindicated -> indicated, 禁用 -> 可用), or one
  added before the first auxiliary (is, must; 为, 是, 须) or verb;
- side: left and right swapped, bilateral made left.

Drugs are found by INN stems (en) and by their Chinese stems preceded by the characters jieba
could not place in a word (how a new drug name looks to it). This heuristic belongs to the liar,
not to the checker, which knows no drug list. Everything is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from knowledge_base.cues import EN_NEGATION, ZH_NOT_NEGATIONS, sides
from knowledge_base.entities import DRUG_STEMS, EN_WORD, ZH_FUNCTION_CHARACTERS, pos_tokenizer
from knowledge_base.quantities import quantities
from knowledge_base.search import query_language

CLASSES = ("number", "drug", "negation", "side")
ZH_DRUG_STEMS = ("他汀", "替尼", "单抗", "普利", "沙坦", "洛尔", "拉唑", "沙星", "西林", "霉素", "唑仑", "膦酸", "地平",
                 "肝素", "西泮", "韦", "格列")
NAME_FLAGS = ("nr", "nrt", "nz", "ns", "nrfg")
EN_SYNONYMS = {"must": "should", "together with": "along with", "before": "prior to", "in patients with":
               "in patients who have", "is": "is", "every": "each"}
ZH_SYNONYMS = {"为": "是", "与": "和", "不得": "不可", "必须": "须", "应": "须"}
EN_NEGATION_REMOVALS = [(r"\bDo not (\w)", lambda m: m[1].upper()), (r"\bdo not ", ""), (r"\bnot ", ""),
                        (r"\bnever ", ""), (r"\bcontraindicated\b", "indicated"), (r"\bwithout\b", "with"),
                        (r"\bno ", ""), (r"n't\b", "")]
ZH_NEGATION_REMOVALS = [("不得", "可"), ("禁用", "可用"), ("禁止", "可以"), ("严禁", "可以"), ("禁忌", "适用"),
                        ("避免", "可"), ("不", ""), ("无", "有"), ("未", "已"), ("勿", "可"), ("禁", "可")]
EN_AUXILIARY = re.compile(r"\b(is|are|was|were|must|should|may|can|will)\b")
ZH_SIDE_SWAP = {"左": "右", "右": "左", "双侧": "左侧", "两侧": "左侧"}


@dataclass(frozen=True)
class Mutant:
    kind: str
    source: str  # the sentence the statement restates (and cites)
    statement: str


def english_drugs(text: str) -> list[str]:
    return [word for word in EN_WORD.findall(text) if word.lower().endswith(DRUG_STEMS) and len(word) > 5]


def chinese_drugs(text: str) -> list[str]:
    """A Chinese drug stem with the characters before it that jieba left alone or tagged as a name."""
    segments = [(pair.word, pair.flag) for pair in pos_tokenizer().cut(text, HMM=False)]
    drugs = []
    for index, (word, _) in enumerate(segments):
        if not any(word.endswith(stem) or stem.startswith(word) for stem in ZH_DRUG_STEMS):
            continue
        name = "".join(w for w, _ in segments[index:index + 2])
        stem = next((stem for stem in ZH_DRUG_STEMS if stem in name), None)
        if stem is None:
            continue
        name = name[:name.index(stem) + len(stem)]
        start = index
        while start > 0:
            previous, flag = segments[start - 1]
            single = len(previous) == 1 and previous not in ZH_FUNCTION_CHARACTERS and "\u4e00" <= previous <= "\u9fff"
            if not (single or flag in NAME_FLAGS):
                break
            start -= 1
            name = previous + name
        if len(name) > len(stem):
            drugs.append(name)
    return list(dict.fromkeys(drugs))


def drugs_in(text: str) -> list[str]:
    return chinese_drugs(text) if query_language(text) == "zh" else english_drugs(text)


def _sub_first(pattern: str, replacement: str | Callable[[re.Match[str]], str], text: str) -> str | None:
    changed, count = re.subn(pattern, replacement, text, count=1)
    return changed if count else None


def faithful_variants(sentence: str) -> list[str]:
    """The sentence, and restatements of it that keep every fact."""
    zh = query_language(sentence) == "zh"
    comma, end = ("，", "。") if zh else (",", ".")
    body = sentence.rstrip("。.!?！？")
    variants = [sentence]
    parts = [part.strip() for part in body.split(comma)]
    if len(parts) == 2 and all(parts):
        first, second = parts
        if zh:
            variants += [f"{second}，{first}。", f"{second}。"]
        else:
            variants += [f"{second[0].upper()}{second[1:]} {first[0].lower()}{first[1:]}.",
                         f"{second[0].upper()}{second[1:]}."]
    synonyms = ZH_SYNONYMS if zh else EN_SYNONYMS
    reworded = sentence
    for word, synonym in synonyms.items():
        reworded = reworded.replace(word, synonym, 1) if zh else re.sub(rf"\b{word}\b", synonym, reworded, count=1)
    if reworded != sentence:
        variants.append(reworded)
    return list(dict.fromkeys(variants))


def _changed_number(statement: str, source: str) -> str | None:
    held = {quantity.value for quantity in quantities(source)}
    for match in re.finditer(r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?", statement):
        value = float(match.group())
        for candidate in (value * 2, value + 1, value * 10):
            text = f"{candidate:g}"
            if text not in held:
                return statement[:match.start()] + text + statement[match.end():]
    for word, other in (("once", "twice"), ("twice", "once"), ("一次", "两次"), ("两次", "三次")):
        if word in statement:
            return statement.replace(word, other, 1)
    return None


def _inserted_drug(statement: str, source: str, other_drugs: list[str]) -> str | None:
    zh = query_language(statement) == "zh"
    foreign = [drug for drug in other_drugs if drug not in source and (query_language(drug) == "zh") == zh]
    if not foreign:
        return None
    drug = foreign[0]
    own = drugs_in(statement)
    if own:
        return statement.replace(own[0], drug, 1)
    if zh:
        return f"{drug}与{statement}"
    return f"{statement.rstrip('.')} and {drug}."


def _flipped_negation(statement: str) -> str:
    zh = query_language(statement) == "zh"
    if zh:
        masked = statement
        for word in ZH_NOT_NEGATIONS:
            masked = masked.replace(word, "\0" * len(word))
        for cue, replacement in ZH_NEGATION_REMOVALS:
            index = masked.find(cue)
            if index >= 0:
                return statement[:index] + replacement + statement[index + len(cue):]
        copula = re.search("[为是须应]", statement)
        if copula is not None:
            return statement[:copula.start()] + "不" + statement[copula.start():]
        position = 0
        for pair in pos_tokenizer().cut(statement, HMM=False):
            if pair.flag.startswith("v"):
                return statement[:position] + "不" + statement[position:]
            position += len(pair.word)
        return "不" + statement
    if EN_NEGATION.search(statement):
        for pattern, replacement in EN_NEGATION_REMOVALS:
            changed = _sub_first(pattern, replacement, statement)
            if changed is not None:
                return changed
    changed = _sub_first(EN_AUXILIARY.pattern, r"\1 not", statement)
    return changed if changed is not None else f"Do not {statement[0].lower()}{statement[1:]}"


def _swapped_side(statement: str) -> str | None:
    if not sides(statement):
        return None
    if query_language(statement) == "zh":
        match = re.search("双侧|两侧|(?<!左)右(?!左)|左(?!右)", statement)
        if match is None:
            return None
        return statement[:match.start()] + ZH_SIDE_SWAP[match.group()] + statement[match.end():]
    swap = {"left": "right", "right": "left", "bilateral": "left", "Left": "Right", "Right": "Left",
            "Bilateral": "Left"}
    return _sub_first(r"\b(left|right|bilateral|Left|Right|Bilateral)\b", lambda m: swap[m[1]], statement)


def mutants(statement: str, source: str, other_drugs: list[str]) -> list[Mutant]:
    """One lie per class that applies to this statement (a sentence without a side has no side lie)."""
    lies = {"number": _changed_number(statement, source), "drug": _inserted_drug(statement, source, other_drugs),
            "negation": _flipped_negation(statement), "side": _swapped_side(statement)}
    return [Mutant(kind, source, lie) for kind, lie in lies.items() if lie is not None and lie != statement]
