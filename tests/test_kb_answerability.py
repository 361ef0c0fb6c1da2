"""The answerability gate: calibrated per KB, stored inside it, refusing questions the KB cannot answer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge_base import KnowledgeBase, KnowledgeBaseError
from knowledge_base.answerability import DEFAULT_THRESHOLD
from knowledge_base.calibration import calibrate, calibration_record, store_calibration
from knowledge_base.evaluate import load_qrels
from knowledge_base.manifest import verify_kb


def orbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orbox", "kb", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def calibrated_kb(synthetic_kb: Path, synthetic_corpus: tuple[Path, Path],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("calibrated") / "kb"
    shutil.copytree(synthetic_kb, copy)
    result = orbox("calibrate", str(copy), "--qrels", str(synthetic_corpus[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chosen threshold" in result.stdout and "refused unanswerable" in result.stdout
    return copy


def test_calibration_is_stored_hashed_and_refuses_what_the_kb_cannot_answer(
        calibrated_kb: Path, synthetic_corpus: tuple[Path, Path]) -> None:
    assert verify_kb(calibrated_kb) == []
    assert "calibration.json" in json.loads((calibrated_kb / "manifest.json").read_text())["artifacts"]
    questions = [json.loads(line) for line in synthetic_corpus[1].read_text().splitlines()]
    with KnowledgeBase.open(calibrated_kb) as kb:
        verdicts = {q["id"]: kb.answerable(q["query"], kb.search(q["query"], 5)) for q in questions}
    unanswerable = [verdicts[q["id"]] for q in questions if not q["answerable"]]
    answerable = [verdicts[q["id"]] for q in questions if q["answerable"]]
    assert sum(not v.answerable for v in unanswerable) >= 0.95 * len(unanswerable)
    assert sum(not v.answerable for v in answerable) <= 0.10 * len(answerable)
    assert all(v.answerable == (v.score >= v.threshold) for v in verdicts.values())


def test_calibrating_twice_gives_the_same_bytes(calibrated_kb: Path, synthetic_corpus: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(calibrated_kb, again)
    with KnowledgeBase.open(again) as kb:
        report, point = calibrate(kb, load_qrels(synthetic_corpus[1]))
    store_calibration(again, calibration_record(report, point), None)
    for name in ("calibration.json", "manifest.json"):
        assert (again / name).read_bytes() == (calibrated_kb / name).read_bytes()


def test_eval_reports_checker_and_refusals(calibrated_kb: Path, synthetic_corpus: tuple[Path, Path]) -> None:
    result = orbox("eval", str(calibrated_kb), "--qrels", str(synthetic_corpus[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("caught number lies", "caught drug lies", "caught negation lies", "caught side lies",
                 "faithful rejected", "calibrated threshold"):
        assert line in result.stdout


def test_an_uncalibrated_kb_uses_the_conservative_default(synthetic_kb: Path) -> None:
    with KnowledgeBase.open(synthetic_kb) as kb:
        verdict = kb.answerable("Who must not receive Zzyzxomab?", kb.search("Who must not receive Zzyzxomab?", 5))
    assert verdict.threshold == DEFAULT_THRESHOLD and not verdict.answerable


def test_a_signed_kb_is_only_calibrated_with_its_key(calibrated_kb: Path, tmp_path: Path) -> None:
    from primitives.signing import generate_keypair, sign_bundle

    copy = tmp_path / "kb"
    shutil.copytree(calibrated_kb, copy)
    key, pub = generate_keypair(tmp_path / "site")
    sign_bundle(copy, key)
    record = json.loads((copy / "calibration.json").read_text()) | {"threshold": 0.5}
    with pytest.raises(KnowledgeBaseError, match="--sign-key"):
        store_calibration(copy, record, None)
    assert verify_kb(copy, pub) == []
    store_calibration(copy, record, key)
    assert verify_kb(copy, pub) == []
    with KnowledgeBase.open(copy, pubkey=pub) as kb:
        assert kb.threshold == 0.5 and kb.calibrated
