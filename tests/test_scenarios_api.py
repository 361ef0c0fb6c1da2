"""POST /v1/scenarios/admission-note and /patient-brief on a real `orbox serve` with the tiny test LLM.

The tiny model writes poor items, so these tests hold invariants, not prose: the model's output is
held to the schema, every delivered item cites given ids only, no item the checker rejects is
delivered, allergy and denial facts appear verbatim, and the same facts give the same draft.
"""

from __future__ import annotations

import pytest
from api_data.fixtures import Server

from appliance.scenarios.drafting import MAX_TOKENS
from appliance.scenarios.facts import Fact, must_keep
from knowledge_base.checker import check_statement

ENDPOINT = "/v1/scenarios/admission-note"
BRIEF = "/v1/scenarios/patient-brief"
FACTS = [{"id": "f1", "text": "发热3天，最高体温39.2℃"}, {"id": "f2", "text": "右下腹痛2天"},
         {"id": "f3", "text": "对青霉素过敏，表现为皮疹"}, {"id": "f4", "text": "否认高血压、糖尿病病史"},
         {"id": "f5", "text": "否认家族遗传病史"}, {"id": "f6", "text": "白细胞15.2×10^9/L"}]
EN_FACTS = [{"id": "a", "text": "Right lower quadrant pain for 2 days"},
            {"id": "b", "text": "Allergic to penicillin"}, {"id": "c", "text": "Denies smoking"}]


def _draft(server: Server, facts: list[dict], language: str, endpoint: str = ENDPOINT) -> dict:
    with server.client() as client:
        answer = client.post(endpoint, json={"facts": facts, "language": language}, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(("facts", "language", "endpoint"), [(FACTS, "zh", ENDPOINT), (EN_FACTS, "en", ENDPOINT),
                                                             (FACTS, "zh", BRIEF)])
def test_a_draft_keeps_its_invariants_whatever_the_model_writes(api_server: Server, facts: list[dict],
                                                                language: str, endpoint: str) -> None:
    note = _draft(api_server, facts, language, endpoint)
    texts = {fact["id"]: fact["text"] for fact in facts}
    assert note["object"] == "scenario." + endpoint.rsplit("/", 1)[1].replace("-", "_")
    delivered = [item for section in note["sections"] for item in section["items"]]
    for item in delivered:
        assert item["fact_ids"] and set(item["fact_ids"]) <= set(texts)
        assert check_statement(item["text"], [texts[fact_id] for fact_id in item["fact_ids"]]).supported
    for section in note["sections"]:
        assert section["items"] or section["text"] == {"zh": "未提供", "en": "not provided"}[language]
    for fact in facts:
        if must_keep(Fact(fact["id"], fact["text"])):
            assert any(fact["text"] in item["text"] for item in delivered), fact
    cited = {fact_id for item in delivered for fact_id in item["fact_ids"]}
    assert {fact["id"] for fact in note["orbox"]["unused_facts"]} == set(texts) - cited
    # The grammar holds the model to the schema; only a draft cut off at the token limit can be unreadable.
    assert note["orbox"]["model_output"] == "valid" or note["usage"]["completion_tokens"] == MAX_TOKENS


def test_the_same_facts_give_the_same_draft_and_the_audit_keeps_no_text(api_server: Server) -> None:
    first, second = _draft(api_server, FACTS, "zh"), _draft(api_server, FACTS, "zh")
    assert (first["sections"], first["orbox"]) == (second["sections"], second["orbox"])
    record = next(r["fields"] for r in reversed(api_server.audit_records())
                  if r["fields"].get("request_id") == second["id"].removeprefix("draft-"))
    assert len(record["facts_sha256"]) == 64 and len(record["draft_sha256"]) == 64 and record["facts"] == len(FACTS)
    assert record["outside_llm_ms"] >= 0
    logged = api_server.audit_path.read_text(encoding="utf-8")
    assert not any(fact["text"] in logged for fact in FACTS)


@pytest.mark.parametrize(("body", "param"), [
    ({"facts": [], "language": "zh"}, "facts"),
    ({"facts": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "language": "zh"}, "facts"),
    ({"facts": [{"id": "a", "text": "发热" * 50_000}], "language": "zh"}, "facts.0.text"),
    ({"facts": [{"id": "a", "text": "发热"}], "language": "fr"}, "language"),
    ({"facts": [{"id": "a b", "text": "发热"}], "language": "zh"}, "facts.0.id"),
])
def test_bad_input_is_a_400_naming_the_field(api_server: Server, body: dict, param: str) -> None:
    with api_server.client() as client:
        for endpoint in (ENDPOINT, BRIEF):
            answer = client.post(endpoint, json=body)
            assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
