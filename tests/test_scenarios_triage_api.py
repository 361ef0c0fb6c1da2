"""POST /v1/scenarios/triage on a real `orbox serve` that serves the synthetic triage KB, with the tiny test LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data.fixtures import Server, serve

from appliance.scenarios.synthetic import TriageGuide

ENDPOINT = "/v1/scenarios/triage"


@pytest.fixture(scope="module")
def triage_server(api_bundle: Path, triage_kb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("triage-server")
    (root / "triage").symlink_to(triage_kb, target_is_directory=True)
    with serve(api_bundle, root, kb={"paths": [str(root / "triage")]}) as server:
        yield server


def _complaint(guide: TriageGuide, kind: str, language: str):
    return next(c for c in guide.complaints if c.kind == kind and c.language == language)


def _post(server: Server, body: dict) -> dict:
    with server.client() as client:
        answer = client.post(ENDPOINT, json=body, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_red_flag_sends_to_the_emergency_department_with_the_rule_cited_and_no_llm(
        triage_server: Server, triage_guide: TriageGuide, language: str) -> None:
    complaint = _complaint(triage_guide, "red_flag", language)
    result = _post(triage_server, {"complaint": complaint.text, "language": language})  # the only KB: kb optional
    assert (result["department"], result["urgency"], result["decided_by"]) == (complaint.department, "emergency",
                                                                               "red_flag")
    assert result["orbox"]["llm_sha256"] is None and result["usage"]["total_tokens"] == 0
    rules = {rule["id"]: rule for rule in result["rules"]}
    assert all(rules[rule_id]["red_flag"] for rule_id in result["department_rules"])
    assert [item["text"] for item in result["guidance"]] == [rules[i]["kb_citation"]["cited_text"]
                                                             for i in result["department_rules"]]


def test_an_ambiguous_complaint_runs_the_llm_and_delivers_only_a_rule_backed_department(
        triage_server: Server, triage_guide: TriageGuide) -> None:
    complaint = _complaint(triage_guide, "ambiguous", "en")
    result = _post(triage_server, {"complaint": complaint.text, "language": "en", "kb": "kb:triage"})
    assert result["orbox"]["llm_sha256"] and result["orbox"]["model_output"] in ("valid", "invalid")
    rules = {rule["id"]: rule for rule in result["rules"]}
    if result["department"] is not None:
        assert result["decided_by"] == "model"
        assert all(result["department"] in rules[rule_id]["departments"] for rule_id in result["department_rules"])
    else:
        assert result["decided_by"] == "none" and result["urgency"] == "undetermined"
    again = _post(triage_server, {"complaint": complaint.text, "language": "en", "kb": "triage"})
    assert {key: again[key] for key in ("department", "guidance", "rules", "orbox")} == {
        key: result[key] for key in ("department", "guidance", "rules", "orbox")}


def test_the_audit_keeps_hashes_and_ids_not_the_complaint(triage_server: Server, triage_guide: TriageGuide) -> None:
    complaint = _complaint(triage_guide, "routine", "zh")
    result = _post(triage_server, {"complaint": complaint.text, "language": "zh"})
    assert result["department"] == complaint.department and result["decided_by"] == "rule"
    record = [r for r in triage_server.audit_records() if r["fields"].get("endpoint") == ENDPOINT][-1]["fields"]
    assert record["complaint_chars"] == len(complaint.text) and len(record["complaint_sha256"]) == 64
    assert complaint.text not in str(record) and complaint.department not in str(record)


def test_a_complaint_of_punctuation_or_a_duration_alone_is_answered_not_crashed(triage_server: Server) -> None:
    for complaint in ("!!!", "3天。"):
        result = _post(triage_server, {"complaint": complaint, "language": "zh"})
        assert result["department"] is None and result["urgency"] == "undetermined"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"complaint": " ", "language": "zh"}, 400, "complaint"),
    ({"complaint": "x" * 1001, "language": "zh"}, 400, "complaint"),
    ({"complaint": "腹痛", "language": "fr"}, 400, "language"),
    ({"complaint": "腹痛", "language": "zh", "kb": "kb:nope"}, 404, "kb"),
    ({"complaint": "腹痛", "language": "zh", "diagnose": True}, 400, "diagnose"),
])
def test_bad_input_names_the_field(triage_server: Server, body: dict, status: int, param: str) -> None:
    with triage_server.client() as client:
        answer = client.post(ENDPOINT, json=body)
    assert answer.status_code == status and answer.json()["error"]["param"] == param, answer.text


def test_a_box_without_a_kb_says_which_kb_is_needed(api_server: Server) -> None:
    with api_server.client() as client:
        answer = client.post(ENDPOINT, json={"complaint": "腹痛", "language": "zh"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "kb"
    assert "--kb" in answer.json()["error"]["message"]
