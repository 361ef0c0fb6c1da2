"""`orbox scenarios eval` end to end: seeded patients through the scripted writers and the bundle's tiny LLM,
triage through a KB it builds with the bundle's encoder; the report holds the issue's targets."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import orbox_cli


def test_scenarios_eval_meets_the_correctness_targets_and_reports_times(api_bundle: Path, tmp_path: Path) -> None:
    report = tmp_path / "scenarios.json"
    result = orbox_cli("scenarios", "eval", "--bundle", str(api_bundle), "--patients", "6", "--llm-patients", "2",
                       "--seed", "5", "--report", str(report), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(report.read_text())
    assert numbers["schema_valid"] == 1.0 and numbers["must_keep_present"] == 1.0
    assert numbers["lies_delivered"] == 0 and set(numbers["lies"]) == {"number", "drug", "negation", "side"}
    assert numbers["facts_accounted"] == 1.0
    model = numbers["model"]
    assert model["drafts"] == 4 and model["schema_valid"] == 1.0 and model["must_keep_present"] == 1.0
    assert model["facts_accounted"] == 1.0 and model["draft_s_p50"] > 0
    right = {kind: tuple(map(int, ratio.split("/"))) for kind, ratio in numbers["triage_right_department"].items()}
    assert set(right) == {"routine", "red_flag", "out_of_scope", "ambiguous"}
    assert all(hits == total for hits, total in right.values()), right
    assert numbers["triage_lies"] > 0 and numbers["triage_lies_delivered"] == 0
    assert numbers["triage_diagnoses_delivered"] == 0
    assert "target" in result.stdout and "time outside the LLM, p50" in result.stdout


def test_scenarios_eval_names_a_bad_bundle(tmp_path: Path) -> None:
    result = orbox_cli("scenarios", "eval", "--bundle", str(tmp_path), "--patients", "1")
    assert result.returncode != 0 and "--bundle" in result.stderr and "Traceback" not in result.stderr
