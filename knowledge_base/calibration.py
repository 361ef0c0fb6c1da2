"""`orbox kb calibrate`: the answerability threshold of one KB, measured on its qrels and stored inside it.

calibration.json joins the KB's artifacts: the manifest is rewritten with its sha256 (and
re-signed when a key is given), so the KB stays content-addressed, and the same KB and qrels
give the same bytes (canonical JSON, no timestamp). A signed KB is not touched without its key,
since rewriting its manifest would break the signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from knowledge_base.answerability import (
    CALIBRATION,
    METHOD,
    REFUSE_ANSWERABLE_GATE,
    REFUSE_UNANSWERABLE_GATE,
    RefusalPoint,
    choose_threshold,
    refusal_curve,
)
from knowledge_base.errors import KnowledgeBaseError
from knowledge_base.manifest import SECTION, read_kb_manifest, write_kb_manifest
from knowledge_base.search import KnowledgeBase
from primitives.atomic import atomic_write_bytes
from primitives.signing import SIGNATURE_NAME, canonical_json, sign_bundle

TOP_K = 5


@dataclass(frozen=True)
class RefusalReport:
    """Evidence scores of the answerable and unanswerable questions, and what a threshold makes of them."""

    answerable: list[float]
    unanswerable: list[float]

    def curve(self) -> list[RefusalPoint]:
        return refusal_curve(self.answerable, self.unanswerable)

    def at(self, threshold: float) -> RefusalPoint:
        return RefusalPoint(threshold, _share_below(self.unanswerable, threshold),
                            _share_below(self.answerable, threshold))

    def failures(self, threshold: float) -> list[str]:
        point = self.at(threshold)
        failed = []
        if not self.unanswerable:
            return ["no unanswerable question in the qrels; refusal cannot be measured"]
        if point.refused_unanswerable < REFUSE_UNANSWERABLE_GATE:
            failed.append(f"refused {point.refused_unanswerable:.3f} of unanswerable questions, below the gate "
                          f"{REFUSE_UNANSWERABLE_GATE:.2f}")
        if point.refused_answerable > REFUSE_ANSWERABLE_GATE:
            failed.append(f"refused {point.refused_answerable:.3f} of answerable questions, above the gate "
                          f"{REFUSE_ANSWERABLE_GATE:.2f}")
        return failed

    def table(self, threshold: float, chosen: str) -> str:
        lines = [f"{'threshold':>9}  {'refused unanswerable':>20}  {'refused answerable':>18}"]
        for point in self.curve():
            lines.append(f"{point.threshold:>9.4f}  {point.refused_unanswerable:>20.3f}  "
                         f"{point.refused_answerable:>18.3f}")
        point = self.at(threshold)
        lines.append(f"{chosen} threshold {threshold:.4f}: refuses {point.refused_unanswerable:.3f} of "
                     f"{len(self.unanswerable)} unanswerable (target >= {REFUSE_UNANSWERABLE_GATE:.2f}) and "
                     f"{point.refused_answerable:.3f} of {len(self.answerable)} answerable (target <= "
                     f"{REFUSE_ANSWERABLE_GATE:.2f})")
        return "\n".join(lines)


def _share_below(scores: list[float], threshold: float) -> float:
    return sum(score < threshold for score in scores) / len(scores) if scores else 0.0


def refusal_report(kb: KnowledgeBase, qrels: list[dict[str, Any]]) -> RefusalReport:
    answerable, unanswerable = [], []
    for qrel in qrels:
        score = kb.answerable(qrel["query"], kb.search(qrel["query"], TOP_K)).score
        (answerable if qrel["answerable"] else unanswerable).append(score)
    return RefusalReport(answerable, unanswerable)


def store_calibration(root: Path, record: dict[str, Any], sign_key: Path | None) -> None:
    """Write calibration.json, list it in the manifest, and re-sign with sign_key."""
    manifest = read_kb_manifest(root)
    if (root / SIGNATURE_NAME).exists() and sign_key is None:
        raise KnowledgeBaseError(f"{root / SIGNATURE_NAME}: the KB is signed; pass --sign-key to re-sign it "
                                 "with its calibration")
    atomic_write_bytes(root / CALIBRATION, canonical_json(record))
    artifacts = {path: {key: value for key, value in entry.items() if key not in ("sha256", "size")}
                 for path, entry in manifest["artifacts"].items()}
    artifacts[CALIBRATION] = {"kind": "answerability-calibration"}
    section = {key: value for key, value in manifest["sections"][SECTION].items() if key != "format"}
    write_kb_manifest(root, manifest["profile"], section, artifacts)
    if sign_key is not None:
        sign_bundle(root, sign_key)


def calibration_record(report: RefusalReport, point: RefusalPoint) -> dict[str, Any]:
    return {"method": METHOD, "threshold": point.threshold, "top_k": TOP_K, "answerable": len(report.answerable),
            "unanswerable": len(report.unanswerable), "at_threshold": asdict(point)}


def calibrate(kb: KnowledgeBase, qrels: list[dict[str, Any]]) -> tuple[RefusalReport, RefusalPoint]:
    """The refusal scores and the chosen point: the lowest threshold that refuses enough unanswerable questions."""
    report = refusal_report(kb, qrels)
    if not report.unanswerable:
        raise KnowledgeBaseError("qrels: no unanswerable question; a threshold cannot be calibrated")
    return report, choose_threshold(report.curve())
