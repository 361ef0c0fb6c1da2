"""Grounded answers (`model: kb:<name>`) through the official openai client against a real `orbox serve`.

The tiny test LLM has random weights, so it writes poor statements and the checker drops most of
them: these tests assert the invariants (spans, refusals, determinism, audit), never the prose.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_data.fixtures import LLM_MODEL, Server, serve
from appliance_data.fixtures import wait_for
from kb_data.fixtures import KB_NAME

from appliance.grounding import REFUSALS
from knowledge_base import KnowledgeBase
from knowledge_base.synthetic import Question

pytestmark = pytest.mark.xdist_group("kb_server")
MODEL = f"kb:{KB_NAME}"
VOLATILE = ("id", "created")


def _questions(synthetic_corpus, answerable: bool, lang: str) -> list[Question]:
    lines = synthetic_corpus[1].read_text().splitlines()
    return [q for q in (Question(**json.loads(line)) for line in lines) if q.answerable == answerable
            and q.lang == lang]


def _ask(server: Server, question: str, **extra) -> dict:
    completion = server.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                                         **extra)
    return completion.model_dump()


def _stable(answer: dict) -> str:
    return json.dumps({key: value for key, value in answer.items() if key not in VOLATILE}, sort_keys=True,
                      ensure_ascii=False)


def _assert_spans(answer: dict, synthetic_kb) -> None:
    message = answer["choices"][0]["message"]
    with KnowledgeBase.open(synthetic_kb, verify=False) as kb:
        for annotation in message["annotations"]:
            citation = annotation["kb_citation"]
            assert annotation["type"] == "kb_citation"
            statement = message["content"][annotation["start_index"]:annotation["end_index"]]
            assert statement and statement in [v["text"] for v in answer["orbox"]["verdicts"] if v["supported"]]
            document = kb.document_text(citation["doc_id"])
            assert citation["cited_text"] == document[citation["start_char"]:citation["end_char"]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_unanswerable_question_is_refused_in_its_language_before_any_llm_call(
        kb_server: Server, synthetic_corpus, lang: str) -> None:
    question = _questions(synthetic_corpus, answerable=False, lang=lang)[0]
    answer = _ask(kb_server, question.query)
    message = answer["choices"][0]["message"]
    assert message["refusal"] == REFUSALS["no_evidence"][lang]
    assert not message["content"] and message["annotations"] == []
    assert answer["orbox"]["refusal_code"] == "no_evidence" and answer["orbox"]["llm_sha256"] is None
    assert answer["usage"]["completion_tokens"] == 0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_citation_of_an_answer_resolves_to_its_statement_and_its_source(
        kb_server: Server, synthetic_corpus, synthetic_kb, lang: str) -> None:
    for question in _questions(synthetic_corpus, answerable=True, lang=lang)[:3]:
        answer = _ask(kb_server, question.query)
        report, message = answer["orbox"], answer["choices"][0]["message"]
        assert report["retrieved"] and report["kb_sha256"] == KnowledgeBase.open(synthetic_kb, verify=False).sha256
        assert (report["llm_sha256"] is None) == (report["refusal_code"] == "no_evidence")
        if report["refusal_code"] is None:
            assert message["content"] and message["refusal"] is None and message["annotations"]
        else:
            assert message["content"] is None and message["annotations"] == [] and message["refusal"]
            assert all(not verdict["supported"] for verdict in report["verdicts"])
        _assert_spans(answer, synthetic_kb)


def test_quote_mode_answers_with_verbatim_source_sentences(kb_server: Server, synthetic_corpus, synthetic_kb) -> None:
    question = _questions(synthetic_corpus, answerable=True, lang="en")[0]
    answer = _ask(kb_server, question.query, extra_body={"orbox": {"mode": "quote"}})
    message, report = answer["choices"][0]["message"], answer["orbox"]
    assert report["mode"] == "quote" and report["llm_sha256"] is None and report["refusal_code"] is None
    assert message["annotations"] and all(verdict["supported"] for verdict in report["verdicts"])
    for annotation in message["annotations"]:
        statement = message["content"][annotation["start_index"]:annotation["end_index"]]
        assert statement == annotation["kb_citation"]["cited_text"]
    _assert_spans(answer, synthetic_kb)
    assert question.answer in message["content"], "the answering sentence should be among the quotes"


def test_streaming_sends_the_checked_answer_as_one_content_chunk(kb_server: Server, synthetic_corpus) -> None:
    question = _questions(synthetic_corpus, answerable=True, lang="en")[0].query
    whole = _ask(kb_server, question, extra_body={"orbox": {"mode": "quote"}})["choices"][0]["message"]["content"]
    chunks = list(kb_server.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], stream=True,
        extra_body={"orbox": {"mode": "quote"}}))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == [whole] and chunks[-1].choices[0].finish_reason == "stop"


def test_answers_are_byte_identical_warm_after_an_unrelated_request_and_across_a_restart(
        kb_server: Server, synthetic_corpus, api_bundle, synthetic_kb, tmp_path) -> None:
    question = _questions(synthetic_corpus, answerable=True, lang="en")[1].query
    first = _stable(_ask(kb_server, question))
    kb_server.openai().chat.completions.create(model=LLM_MODEL, max_tokens=5,
                                               messages=[{"role": "user", "content": "Unrelated: count to three."}])
    assert _stable(_ask(kb_server, question)) == first
    assert _stable(_ask(kb_server, question)) == first  # warm: the whole prompt is in the KV cache
    shutil.copytree(synthetic_kb, tmp_path / KB_NAME)
    with serve(api_bundle, tmp_path, args=["--kb", str(tmp_path / KB_NAME)]) as restarted:
        assert _stable(_ask(restarted, question)) == first  # cold: a new process, an empty cache


def test_answers_are_byte_identical_with_other_clients_at_the_same_time(kb_server: Server,
                                                                      synthetic_corpus) -> None:
    question = _questions(synthetic_corpus, answerable=True, lang="en")[1].query
    modes = {mode: {"extra_body": {"orbox": {"mode": mode}}} for mode in ("answer", "quote")}
    answers = {mode: _ask(kb_server, question, **extra) for mode, extra in modes.items()}
    assert answers["answer"]["orbox"]["llm_sha256"], "answer mode should reach the LLM for this question"
    reference = {mode: _stable(answer) for mode, answer in answers.items()}
    with ThreadPoolExecutor(max_workers=7) as pool:
        unrelated = pool.submit(kb_server.openai().chat.completions.create, model=LLM_MODEL, max_tokens=24,
                                messages=[{"role": "user", "content": "Unrelated: name the planets in order."}])
        asked = [(mode, pool.submit(_ask, kb_server, question, **extra)) for mode, extra in modes.items()
                 for _ in range(3)]
        concurrent = [(mode, _stable(future.result())) for mode, future in asked]
    assert unrelated.result().usage.completion_tokens > 0
    assert [answer == reference[mode] for mode, answer in concurrent] == [True] * len(asked)


def test_the_audit_record_of_an_answer_holds_hashes_and_verdicts_but_no_text(kb_server: Server,
                                                                            synthetic_corpus) -> None:
    question = _questions(synthetic_corpus, answerable=True, lang="en")[2]
    answer = _ask(kb_server, question.query)
    request_id = answer["id"].removeprefix("chatcmpl-")
    # audit records are written by a background thread: wait for this answer's
    record = wait_for(lambda: next((r["fields"] for r in kb_server.audit_records()
                                    if r["fields"].get("request_id") == request_id), None), 10, "the answer's record")
    assert record["kb_sha256"] == answer["orbox"]["kb_sha256"] and record["artifact_sha256"]
    assert record["query_chars"] == len(question.query) and len(record["query_sha256"]) == 64
    assert record["retrieved_chunk_ids"] == [chunk["chunk_id"] for chunk in answer["orbox"]["retrieved"]]
    assert [v["supported"] for v in record["verdicts"]] == [v["supported"] for v in answer["orbox"]["verdicts"]]
    assert record["refusal_code"] == answer["orbox"]["refusal_code"]
    cited = {a["kb_citation"]["chunk_id"] for a in answer["choices"][0]["message"]["annotations"]}
    assert {chunk["chunk_id"] for chunk in record["cited_chunks"]} == cited
    audit = kb_server.audit_path.read_text()
    texts = [question.query, *(v["text"] for v in answer["orbox"]["verdicts"])]
    assert not [text for text in texts if text and text in audit]


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 0.7}, "temperature"),
    ({"extra_body": {"orbox": {"mode": "summarise"}}}, "orbox.mode"),
    ({"messages": [{"role": "system", "content": "no question"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
])
def test_bad_grounded_requests_are_clear_400s(kb_server: Server, extra: dict, param: str) -> None:
    import openai

    arguments = {"model": MODEL, "messages": [{"role": "user", "content": "dose?"}], **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        kb_server.openai().chat.completions.create(**arguments)
    error = caught.value.body
    assert error["param"] == param and error["message"].startswith(param), error
