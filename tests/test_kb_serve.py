"""Knowledge bases on a real `orbox serve`: loading (and refusing) at start, /v1/kb/{name}/search, /v1/rerank,
/v1/models, and bad input as OpenAI-shaped 4xx errors."""

from __future__ import annotations

import json

import openai
import pytest
from api_data.fixtures import EMBEDDING_MODEL, Server
from kb_data.fixtures import BROKEN_KB_NAME, KB_NAME

from knowledge_base import KnowledgeBase

pytestmark = pytest.mark.xdist_group("kb_server")


def test_search_results_resolve_to_their_document_spans(kb_server: Server, synthetic_kb) -> None:
    with kb_server.client() as client:
        response = client.post(f"/v1/kb/{KB_NAME}/search", json={"query": "renal dose", "top_k": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    manifest_sha256 = KnowledgeBase.open(synthetic_kb, verify=False).sha256
    assert body["model"] == f"kb:{KB_NAME}" and body["kb_sha256"] == manifest_sha256
    assert len(body["results"]) == 4
    with KnowledgeBase.open(synthetic_kb, verify=False) as kb:
        for result in body["results"]:
            assert kb.document_text(result["doc_id"])[result["start_char"]:result["end_char"]] == result["text"]
    scores = [result["score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_models_list_each_served_kb(kb_server: Server, synthetic_kb) -> None:
    models = {model.id: model.model_dump() for model in kb_server.openai().models.list().data}
    assert f"kb:{KB_NAME}" in models and f"kb:{BROKEN_KB_NAME}" not in models
    card = models[f"kb:{KB_NAME}"]
    assert card["role"] == "kb" and card["sha256"] == KnowledgeBase.open(synthetic_kb, verify=False).sha256


def test_a_tampered_kb_is_refused_and_reported_while_the_rest_serves(kb_server: Server) -> None:
    with kb_server.client() as client:
        status = {kb["name"]: kb for kb in client.get("/api/status").json()["knowledge_bases"]}
        response = client.post(f"/v1/kb/{BROKEN_KB_NAME}/search", json={"query": "dose"})
    assert status[KB_NAME]["state"] == "ready"
    assert status[BROKEN_KB_NAME]["state"] == "refused" and "kb.sqlite" in status[BROKEN_KB_NAME]["detail"]
    assert response.status_code == 404 and response.json()["error"]["code"] == "kb_not_loaded"
    refused = kb_server.audit_records("kb.refused")
    assert [record["fields"]["name"] for record in refused] == [BROKEN_KB_NAME]
    assert [record["fields"]["name"] for record in kb_server.audit_records("kb.loaded")] == [KB_NAME]


@pytest.mark.parametrize(("path", "body", "param", "code"), [
    ("/v1/kb/nosuch/search", {"query": "dose"}, "name", "kb_not_found"),
    (f"/v1/kb/{KB_NAME}/search", {"query": ""}, "query", "invalid_request"),
    (f"/v1/kb/{KB_NAME}/search", {"query": "   "}, "query", "invalid_request"),
    (f"/v1/kb/{KB_NAME}/search", {"query": "dose", "top_k": 0}, "top_k", "invalid_request"),
    (f"/v1/kb/{KB_NAME}/search", {"query": "dose", "top_k": 101}, "top_k", "invalid_request"),
    (f"/v1/kb/{KB_NAME}/search", {"query": "dose", "k": 3}, "k", "invalid_request"),
    ("/v1/chat/completions", {"model": "kb:nosuch", "messages": [{"role": "user", "content": "dose?"}]},
     "model", "kb_not_found"),
    ("/v1/rerank", {"model": "any", "query": "dose", "documents": ["a", "b"]}, "model", "model_not_found"),
    ("/v1/rerank", {"model": "any", "query": "dose", "documents": []}, "documents", "invalid_request"),
])
def test_bad_input_is_a_clear_4xx_in_the_openai_shape(kb_server: Server, path: str, body: dict, param: str,
                                                      code: str) -> None:
    with kb_server.client() as client:
        response = client.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == code, error
    assert error["message"].startswith(param) and "Traceback" not in response.text


def test_rerank_without_a_reranker_in_the_bundle_names_the_gap(kb_server: Server) -> None:
    client = kb_server.openai()
    with pytest.raises(openai.NotFoundError) as caught:
        client.post("/rerank", cast_to=object,
                    body={"model": EMBEDDING_MODEL, "query": "dose", "documents": ["a", "b"]})
    assert "no reranker model" in json.dumps(caught.value.body)


def test_search_audit_records_hold_no_text(kb_server: Server) -> None:
    query = "Zzyzx unique audit probe dose"
    with kb_server.client() as client:
        assert client.post(f"/v1/kb/{KB_NAME}/search", json={"query": query, "top_k": 2}).status_code == 200
    audit = kb_server.audit_path.read_text()
    assert "Zzyzx" not in audit
    record = [r for r in kb_server.audit_records() if r["fields"]["endpoint"] == "/v1/kb/search"][-1]["fields"]
    assert record["prompt_chars"] == len(query) and len(record["chunk_ids"]) == 2
