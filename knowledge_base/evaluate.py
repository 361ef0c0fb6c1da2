"""`orbox kb eval`: recall@k per retrieval leg, citation spans, and the checker's mutation suite.

A question counts as found by a leg when one of its top-k chunks comes from the qrel's document
and contains the qrel's answer sentence. Spans are checked KB-wide: every chunk's slice of its
document's text must hash to the chunk's recorded sha256 and every sentence must lie inside its
chunk, and every hit returned during the evaluation must equal `document_text[start:end]`. The
checker is measured on the KB's own sentences (`mutations`): each is a faithful statement citing
itself, with its restatements and one lie per class made from each. Refusals are measured at the
KB's answerability threshold (calibrated, or the default) on every question of the qrels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge_base.calibration import RefusalReport, refusal_report
from knowledge_base.checker import check_statement
from knowledge_base.errors import KnowledgeBaseError
from knowledge_base.mutations import CLASSES, drugs_in, faithful_variants, mutants
from knowledge_base.search import LEGS, KnowledgeBase
from knowledge_base.store import text_sha256

RECALL_GATE = 0.90
CATCH_GATE = 0.99
FALSE_REJECTION_GATE = 0.05
STATEMENT_END = re.compile(r"[.。!?！？]$")
QREL_FIELDS = {"id": str, "lang": str, "query": str, "answerable": bool}


@dataclass
class LegRecall:
    found: dict[str, int] = field(default_factory=dict)  # per language
    asked: dict[str, int] = field(default_factory=dict)

    def add(self, lang: str, hit: bool) -> None:
        self.asked[lang] = self.asked.get(lang, 0) + 1
        self.found[lang] = self.found.get(lang, 0) + int(hit)

    def recall(self, lang: str | None = None) -> float:
        asked = sum(self.asked.values()) if lang is None else self.asked.get(lang, 0)
        found = sum(self.found.values()) if lang is None else self.found.get(lang, 0)
        return found / asked if asked else 0.0


@dataclass
class CheckerReport:
    """The mutation suite: how many lies per class the checker caught, how many faithful statements it rejected."""

    caught: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    told: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    faithful: int = 0
    rejected: int = 0

    def catch_rate(self, kind: str) -> float:
        return self.caught[kind] / self.told[kind] if self.told[kind] else 0.0

    def false_rejection(self) -> float:
        return self.rejected / self.faithful if self.faithful else 0.0

    def failures(self) -> list[str]:
        failed = [f"checker caught {self.catch_rate(kind):.3f} of {kind} lies, below the gate {CATCH_GATE:.2f}"
                  for kind in CLASSES if self.told[kind] and self.catch_rate(kind) < CATCH_GATE]
        if self.false_rejection() > FALSE_REJECTION_GATE:
            failed.append(f"checker rejected {self.false_rejection():.3f} of faithful statements, above the gate "
                          f"{FALSE_REJECTION_GATE:.2f}")
        return failed

    def table(self) -> str:
        lines = [f"{'checker':<22} {'rate':>6}  {'count':>11}  target"]
        for kind in CLASSES:
            lines.append(f"{'caught ' + kind + ' lies':<22} {self.catch_rate(kind):>6.3f}  "
                         f"{self.caught[kind]:>5}/{self.told[kind]:<5}  >= {CATCH_GATE:.2f}")
        lines.append(f"{'faithful rejected':<22} {self.false_rejection():>6.3f}  "
                     f"{self.rejected:>5}/{self.faithful:<5}  <= {FALSE_REJECTION_GATE:.2f}")
        return "\n".join(lines)


@dataclass
class EvalReport:
    k: int
    legs: dict[str, LegRecall]
    spans_checked: int
    span_problems: list[str]
    checker: CheckerReport
    refusal: RefusalReport
    threshold: float
    calibrated: bool

    def failures(self) -> list[str]:
        """The gates that failed, as sentences (empty when all pass)."""
        hybrid = self.legs["hybrid"].recall()
        best_leg = max(("lexical", "dense"), key=lambda leg: self.legs[leg].recall())
        failed = []
        if hybrid < RECALL_GATE:
            failed.append(f"hybrid recall@{self.k} {hybrid:.3f} is below the gate {RECALL_GATE:.2f}")
        if hybrid < self.legs[best_leg].recall():
            failed.append(f"hybrid recall@{self.k} {hybrid:.3f} is below the {best_leg} leg's "
                          f"{self.legs[best_leg].recall():.3f}")
        if self.span_problems:
            failed.append(f"{len(self.span_problems)} citation spans do not resolve: {self.span_problems[0]}")
        return failed + self.checker.failures() + self.refusal.failures(self.threshold)

    def table(self) -> str:
        langs = sorted({lang for leg in self.legs.values() for lang in leg.asked})
        header = f"{'leg':<8} {'recall@' + str(self.k):>9}  " + "  ".join(f"{lang:>6}" for lang in langs) + "  found"
        lines = [header]
        for name, leg in self.legs.items():
            per_lang = "  ".join(f"{leg.recall(lang):>6.3f}" for lang in langs)
            lines.append(f"{name:<8} {leg.recall():>9.3f}  {per_lang}  "
                         f"{sum(leg.found.values())}/{sum(leg.asked.values())}")
        resolved = self.spans_checked - len(self.span_problems)
        lines.append(f"citation spans resolved: {resolved}/{self.spans_checked}")
        chosen = "calibrated" if self.calibrated else "default (uncalibrated)"
        return "\n".join([*lines, "", self.checker.table(), "", self.refusal.table(self.threshold, chosen)])


def statement_sentences(kb: KnowledgeBase) -> dict[str, list[str]]:
    """doc_id -> its sentences that state something (end like a sentence; headings and titles do not)."""
    found: dict[str, list[str]] = {}
    for doc_id, *_ in kb.store.documents():
        for chunk_id, *_ in kb.store.document_chunks(doc_id):
            found.setdefault(doc_id, []).extend(s.text for s in kb.sentences(chunk_id)
                                                if STATEMENT_END.search(s.text) and len(s.text) >= 8)
    return found


def run_mutation_suite(sentences: dict[str, list[str]]) -> CheckerReport:
    """Every faithful variant of every sentence and every lie made from it, each checked against the sentence."""
    report = CheckerReport()
    drugs = {doc_id: sorted({drug for sentence in texts for drug in drugs_in(sentence)})
             for doc_id, texts in sentences.items()}
    doc_ids = sorted(sentences)
    for position, doc_id in enumerate(doc_ids):
        others = [drug for other in doc_ids[position + 1:] + doc_ids[:position] for drug in drugs[other]]
        for source in sentences[doc_id]:
            for statement in faithful_variants(source):
                report.faithful += 1
                verdict = check_statement(statement, [source])
                report.rejected += not verdict.supported
                for mutant in mutants(statement, source, others):
                    report.told[mutant.kind] += 1
                    report.caught[mutant.kind] += not check_statement(mutant.statement, [source]).supported
    return report


def load_qrels(path: Path) -> list[dict[str, Any]]:
    """JSON lines with id, lang, query, answerable and (answerable) doc_id + answer; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KnowledgeBaseError(f"{path}: cannot read the qrels file ({exc.strerror or exc})") from exc
    qrels = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            qrel = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KnowledgeBaseError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        fields = {**QREL_FIELDS, **({"doc_id": str, "answer": str} if qrel.get("answerable") else {})}
        for name, kind in fields.items():
            if not isinstance(qrel.get(name), kind):
                raise KnowledgeBaseError(f"{path}:{number}: field {name!r} must be a {kind.__name__}, "
                                         f"found {qrel.get(name)!r}")
        qrels.append(qrel)
    if not any(qrel["answerable"] for qrel in qrels):
        raise KnowledgeBaseError(f"{path}: no answerable question; recall cannot be measured")
    return qrels


def check_stored_spans(kb: KnowledgeBase) -> tuple[int, list[str]]:
    """Every chunk and sentence of the KB against its document's text."""
    checked, problems = 0, []
    for doc_id, *_ in kb.store.documents():
        text = kb.store.document_text(doc_id)
        for chunk_id, _, _, _, start, end, sha256 in kb.store.document_chunks(doc_id):
            checked += 1
            if not 0 <= start < end <= len(text) or text_sha256(text[start:end]) != sha256:
                problems.append(f"chunk {chunk_id} of {doc_id}: [{start}, {end}) does not match its sha256")
            for sentence_id, s_start, s_end in kb.store.sentences(chunk_id):
                checked += 1
                if not start <= s_start < s_end <= end:
                    problems.append(f"sentence {sentence_id}: [{s_start}, {s_end}) outside chunk {chunk_id}")
    return checked, problems


def evaluate(kb: KnowledgeBase, qrels: list[dict[str, Any]], k: int = 5) -> EvalReport:
    legs = {leg: LegRecall() for leg in LEGS}
    checked, problems = check_stored_spans(kb)
    texts: dict[str, str] = {}
    for qrel in qrels:
        if not qrel["answerable"]:
            continue
        for leg in LEGS:
            hits = kb.search(qrel["query"], k, leg)
            for hit in hits:
                text = texts.setdefault(hit.doc_id, kb.document_text(hit.doc_id))
                checked += 1
                if hit.text != text[hit.start_char:hit.end_char]:
                    problems.append(f"hit chunk {hit.chunk_id}: text is not {hit.doc_id}[{hit.start_char}:"
                                    f"{hit.end_char}]")
            legs[leg].add(qrel["lang"], any(hit.doc_id == qrel["doc_id"] and qrel["answer"] in hit.text
                                            for hit in hits))
    return EvalReport(k, legs, checked, problems, run_mutation_suite(statement_sentences(kb)),
                      refusal_report(kb, qrels), kb.threshold, kb.calibrated)
