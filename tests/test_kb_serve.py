"""Knowledge bases on a real `orbox serve`: loading (and refusing) at start, /v1/kb/{name}/search, /v1/rerank,
/v1/models, and bad input as OpenAI-shaped 4xx errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openai
import pytest
from api_data.fixtures import EMBEDDING_MODEL, LLM_MODEL, Server, serve
from appliance_data.fixtures import wait_for
from kb_data.fixtures import BROKEN_KB_NAME, KB_NAME, build_options

from appliance.api.records import prompt_digest
from knowledge_base import KnowledgeBase
from knowledge_base.build import build_kb
from primitives.artifacts import MANIFEST_NAME
from primitives.signing import generate_keypair, sign_bundle

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


def test_a_kb_signed_with_the_site_key_is_served_and_a_foreign_or_unsigned_one_refused(
        api_bundle: Path, kb_encoder_bundle: Path, synthetic_corpus: tuple[Path, Path], synthetic_kb: Path,
        tmp_path: Path) -> None:
    key, pubkey = generate_keypair(tmp_path / "site")
    foreign_key, _ = generate_keypair(tmp_path / "foreign")
    signed, foreign, unsigned = tmp_path / "signed", tmp_path / "foreign", tmp_path / "unsigned"
    build_kb(build_options(synthetic_corpus[0], signed, kb_encoder_bundle, sign_key=key), warn=lambda _: None)
    assert (signed / MANIFEST_NAME).read_bytes() == (synthetic_kb / MANIFEST_NAME).read_bytes()  # signing adds a file
    shutil.copytree(signed, foreign)
    sign_bundle(foreign, foreign_key)
    unsigned.symlink_to(synthetic_kb, target_is_directory=True)
    kb = {"paths": [str(signed), str(foreign), str(unsigned)], "pubkey": str(pubkey)}
    with serve(api_bundle, tmp_path, kb=kb) as server:
        with server.client() as client:
            status = {entry["name"]: entry for entry in client.get("/api/status").json()["knowledge_bases"]}
            search = client.post("/v1/kb/signed/search", json={"query": "renal dose", "top_k": 2})
            refused_search = client.post("/v1/kb/foreign/search", json={"query": "renal dose"})
        chat = server.openai().chat.completions.create(model=LLM_MODEL, max_tokens=3,
                                                       messages=[{"role": "user", "content": "Count to three."}])
        loaded = server.audit_records("kb.loaded")
        refused = {r["fields"]["name"]: r["fields"]["reason"] for r in server.audit_records("kb.refused")}
        stderr = list(server.stderr_lines)
    assert status["signed"]["state"] == "ready" and search.status_code == 200 and len(search.json()["results"]) == 2
    assert [(r["fields"]["name"], r["fields"]["signature_checked"]) for r in loaded] == [("signed", True)]
    reasons = {foreign: "signature does not match", unsigned: "the bundle is not signed"}
    for path, reason in reasons.items():
        assert status[path.name]["state"] == "refused" and reason in status[path.name]["detail"]
        assert reason in refused[path.name]
        said = [line for line in stderr if f"knowledge base {path} refused (kb:{path.name}): " in line]
        assert len(said) == 1 and reason in said[0]
    assert refused_search.status_code == 404 and refused_search.json()["error"]["code"] == "kb_not_loaded"
    assert chat.choices[0].message.content is not None  # the LLM keeps serving beside the refused KBs


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
    digest, _ = prompt_digest(query)
    # audit records are written by a background thread, and other tests share this server: find ours
    record = wait_for(lambda: next((r["fields"] for r in kb_server.audit_records()
                                    if r["fields"].get("prompt_sha256") == digest), None), 10, "the search's record")
    assert record["endpoint"] == "/v1/kb/search"
    assert record["prompt_chars"] == len(query) and len(record["chunk_ids"]) == 2
    assert "Zzyzx" not in kb_server.audit_path.read_text()
