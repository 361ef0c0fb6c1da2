"""The answerability gate: does the KB hold evidence for a question at all? Decided before any LLM call.

Score: the share of what the query names that the best retrieved chunk also holds, each name
weighted by its bm25 idf in this KB, ln(1 + (N - df + 0.5) / (df + 0.5)) (see `query_terms` for
what a name is; a query that names nothing is scored on all its terms). A question about
something the KB does not contain names at least one thing no chunk holds (a drug, a
department): that name has the largest idf of all, so the score drops however well the rest of
the question ("what is the adult dose of") matches, while the asker's own wording (receive,
最大) does not count against a question the KB can answer. Why not the top cosine or the fused rank:
the RRF score is a rank, not evidence, and a cosine from an encoder that does not know a
language (MiniLM and Chinese) or a fictional name rates form, not content. The score is the
same for every leg, so a KB without a dense leg for a language is gated the same way.

The threshold is calibrated per KB on its qrels (`orbox kb calibrate`) and kept in the KB as
calibration.json (hashed in the manifest, re-signed with the KB's key); without one the
conservative DEFAULT_THRESHOLD applies: answer only when the best chunk holds 80 % of the
query's information.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from knowledge_base.entities import (
    CJK_RUN,
    EN_FUNCTION_WORDS,
    EN_WORD,
    ZH_FUNCTION_CHARACTERS,
    english_names,
    pos_tokenizer,
)
from knowledge_base.terms import bigram_terms, word_terms

DEFAULT_THRESHOLD = 0.8
CALIBRATION = "calibration.json"
METHOD = "idf-coverage/1"
REFUSE_UNANSWERABLE_GATE = 0.95
REFUSE_ANSWERABLE_GATE = 0.10


# The words that make a text a question carry no evidence, and a KB of statements rarely holds them.
EN_QUESTION_WORDS = EN_FUNCTION_WORDS | {"much", "many", "long", "often", "get", "happen", "need", "needed"}
ZH_QUESTION_WORDS = ("什么", "多少", "哪些", "哪个", "哪种", "哪里", "怎么", "怎样", "如何", "是否", "能否", "可否",
                     "可以", "多久", "多长", "几", "吗", "呢")
_QUESTION_WORD = re.compile(r"\b(?:" + "|".join(sorted(EN_QUESTION_WORDS)) + r")\b|" + "|".join(ZH_QUESTION_WORDS),
                            re.IGNORECASE)


@dataclass(frozen=True)
class Answerability:
    answerable: bool
    score: float
    threshold: float


def query_terms(text: str) -> dict[tuple[str, str], bool]:
    """(FTS column, term) -> whether it names something, for the query's informative terms.

    The words that only make it a question are taken out first. English: every word; names are
    the checker's name-like words (capitalised, alphanumeric, drug or finding stems). Chinese:
    jieba words of two characters or more, and, inside a run of characters jieba could not place
    in any word (how a new drug or place looks to it), every bigram: those are the names.
    Bigrams across word boundaries (者塔, 量是) say nothing and are left out.
    """
    text = _QUESTION_WORD.sub(" ", text)
    names = {name.lower() for name in english_names(text)}
    terms = {("words", word.lower()): word.lower() in names for word in EN_WORD.findall(text)}
    for run in CJK_RUN.findall(text):
        unplaced = ""
        for word in [pair.word for pair in pos_tokenizer().cut(run, HMM=False)] + [""]:
            if len(word) == 1 and word not in ZH_FUNCTION_CHARACTERS:
                unplaced += word
                continue
            terms.update({("grams", gram): True for gram in bigram_terms(unplaced) if len(gram) == 2})
            unplaced = ""
            if len(word) > 1:
                terms[("words", word)] = False
    return terms


def evidence_terms(text: str) -> set[tuple[str, str]]:
    return {("words", term) for term in word_terms(text)} | {("grams", term) for term in bigram_terms(text)}


def idf(document_frequency: int, documents: int) -> float:
    return math.log(1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


def evidence_weights(terms: dict[tuple[str, str], bool], frequency: Callable[[tuple[str, str]], int],
                     documents: int) -> dict[tuple[str, str], float]:
    """idf of the query's names, or of all its terms when it names nothing."""
    named = {term for term, is_name in terms.items() if is_name} or set(terms)
    return {term: idf(frequency(term), documents) for term in sorted(named)}


def coverage(weights: dict[tuple[str, str], float], evidence: Iterable[str]) -> float:
    """The best share of the weighted terms that one evidence text holds (0 with no evidence or no terms)."""
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return max((sum(weight for term, weight in weights.items() if term in evidence_terms(text)) / total
                for text in evidence), default=0.0)


@dataclass(frozen=True)
class RefusalPoint:
    threshold: float
    refused_unanswerable: float
    refused_answerable: float


def refusal_curve(answerable: list[float], unanswerable: list[float]) -> list[RefusalPoint]:
    """Refusal rates (score < threshold is refused) at each threshold between consecutive distinct scores."""
    scores = sorted(set(answerable) | set(unanswerable))
    cuts = [scores[0]] + [(low + high) / 2 for low, high in zip(scores, scores[1:], strict=False)] + [scores[-1] + 1e-9]
    return [RefusalPoint(cut, sum(s < cut for s in unanswerable) / max(len(unanswerable), 1),
                         sum(s < cut for s in answerable) / max(len(answerable), 1)) for cut in cuts]


def choose_threshold(curve: list[RefusalPoint]) -> RefusalPoint:
    """The lowest threshold that refuses the gate's share of unanswerable questions (fewest answerable refused)."""
    return next(point for point in curve if point.refused_unanswerable >= REFUSE_UNANSWERABLE_GATE)
