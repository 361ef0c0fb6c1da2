"""Does the cited text support a statement? A deterministic check of the four facts a model gets wrong.

The server decides what is cited; this decides what is delivered. A statement is supported when:

- number: every quantity it states (value and unit, see `quantities`) occurs in the cited text; a
  number stated without a unit only needs its value there;
- entity: every name-like term (see `entities`) occurs in the cited text;
- negation: it is negated iff the cited clauses it restates are. Scope is the clause (split at
  , ; : and their Chinese forms): the cited clauses whose content terms the statement mostly
  (>= 60 %) contains are the ones it restates, so a reordered or merged clause keeps its
  negation and a cited clause the statement leaves out does not count;
- laterality: every side it names (left, right, bilateral) is named by the cited sentence it
  restates best (most shared content terms; ties: all of them).

Content terms, used only to align clauses, are English words other than function words and cues
and the Chinese character bigrams that hold no cue or side character. Everything is string
work on the two inputs: the same input gives the same verdict, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge_base.cues import CUE_CHARACTERS, EN_NEGATION, SIDE_CHARACTERS, negation_count, sides
from knowledge_base.entities import EN_FUNCTION_WORDS, EN_WORD, cjk_bigrams, missing_names, word_key
from knowledge_base.quantities import quantities

CLAUSE_BOUNDARY = re.compile(r"[,;:，；：。！？!?]|\.(?=\s|$)")
RESTATED_SHARE = 0.6  # share of a cited clause's content terms a statement must hold to restate it


@dataclass(frozen=True)
class Verdict:
    supported: bool
    problems: tuple[str, ...]  # each names the class and the item: "number: 75 mg not in the cited sentences"


def content_terms(text: str) -> frozenset[str]:
    """Words and CJK bigrams that carry content, for aligning clauses; negation and side cues are left out."""
    words = {word_key(word) for word in EN_WORD.findall(EN_NEGATION.sub(" ", text))
             if word.lower() not in EN_FUNCTION_WORDS and not sides(word)}
    grams = {gram for gram in cjk_bigrams(text) if not set(gram) & (CUE_CHARACTERS | SIDE_CHARACTERS)}
    return frozenset(words | grams)


def clauses(text: str) -> list[str]:
    return [part for part in CLAUSE_BOUNDARY.split(text) if part.strip()]


def _masked(text: str) -> str:
    """Quantities blanked out, so that 毫克 or "twice" is judged as a number and not as a name."""
    for quantity in reversed(quantities(text)):
        text = text[:quantity.start] + " " * (quantity.end - quantity.start) + text[quantity.end:]
    return text


def _number_problems(statement: str, cited_text: str) -> list[str]:
    cited = quantities(cited_text)
    with_unit = {(q.value, q.unit) for q in cited}
    values = {q.value for q in cited}
    return [f"number: {q} not in the cited sentences" for q in dict.fromkeys(quantities(statement))
            if (q.value, q.unit) not in with_unit and not (q.unit == "" and q.value in values)]


def _restated_clauses(statement_terms: frozenset[str], cited: Sequence[str]) -> list[str]:
    restated = []
    for sentence in cited:
        for clause in clauses(sentence):
            terms = content_terms(clause)
            if not terms or len(terms & statement_terms) >= RESTATED_SHARE * len(terms):
                restated.append(clause)
    return restated


def _negation_problems(statement: str, cited: Sequence[str]) -> list[str]:
    restated = _restated_clauses(content_terms(statement), cited)
    stated = negation_count(statement) % 2 == 1
    source = sum(negation_count(clause) for clause in restated) % 2 == 1
    if stated == source:
        return []
    return ["negation: the statement is negated and the cited clause is not" if stated else
            "negation: the cited clause is negated and the statement is not"]


def _best_sentences(statement_terms: frozenset[str], cited: Sequence[str]) -> list[str]:
    shared = [len(content_terms(sentence) & statement_terms) for sentence in cited]
    return [sentence for sentence, count in zip(cited, shared, strict=True) if count == max(shared)]


def _laterality_problems(statement: str, cited: Sequence[str]) -> list[str]:
    stated = sides(statement)
    if not stated:
        return []
    named = frozenset().union(*(sides(sentence) for sentence in _best_sentences(content_terms(statement), cited)))
    return [f"laterality: {side} not in the cited sentence" for side in sorted(stated - named)]


def check_statement(statement: str, cited: Sequence[str]) -> Verdict:
    """The verdict on one statement (zh or en) against the source sentences it cites."""
    if not isinstance(statement, str) or not statement.strip():
        return Verdict(False, ("statement: empty",))
    if isinstance(cited, str) or not [sentence for sentence in cited if sentence.strip()]:
        return Verdict(False, ("citation: no cited sentence",))
    cited_text = "\n".join(cited)
    problems = _number_problems(statement, cited_text)
    problems += [f"entity: {name} not in the cited sentences" for name in missing_names(_masked(statement),
                                                                                         cited_text)]
    problems += _negation_problems(statement, cited)
    problems += _laterality_problems(statement, cited)
    return Verdict(not problems, tuple(problems))
