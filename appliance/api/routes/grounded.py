"""Grounded chat completions: `model: kb:<name>` on POST /v1/chat/completions (appliance.grounding does the work).

The answerability gate runs before any LLM call. In answer mode the LLM runs like any chat request
(admission queue, LLM worker) with a grammar generated per request from grounding.output_schema.
The answer is delivered whole, after checking: with `stream: true` it comes as one content chunk,
because no statement may be shown before the checker has passed it. One audit record per answer:
the KB, LLM and query sha256, the query's length, the cited chunk ids and hashes, the checker's
verdicts and the refusal code; never text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from appliance import grounding
from appliance.api.admission import QueueFull, QueueTimeout
from appliance.api.deps import ApiContext, Caller
from appliance.api.errors import ApiError, admission_error, worker_error
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.schemas import (
    ChatCompletionRequest,
    GroundedChoice,
    GroundedCompletion,
    GroundedMessage,
    GroundingReport,
    RetrievedChunk,
    TokenUsage,
)
from appliance.clients import TokenStream, Unavailable
from appliance.grounding import Evidence, GroundedAnswer
from appliance.knowledge_bases import MODEL_PREFIX
from appliance.protocol import RequestFailed, Token, Usage
from knowledge_base import KnowledgeBaseError
from knowledge_base.store import text_sha256

# What would change a grounded answer: refused by name rather than silently ignored.
FIXED_SAMPLING = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "response_format")


async def chat_completion(ctx: ApiContext, request: Request, caller: Caller, body: ChatCompletionRequest) -> Response:
    record = RequestRecord("/v1/chat/completions", caller.name)
    mode = body.orbox.mode if body.orbox is not None else "answer"
    record.set(model=body.model, mode=mode, stream=body.stream)
    try:
        _refuse_sampling(body)
        query = _query(body)
        digest, length = prompt_digest(query)
        record.set(query_sha256=digest, query_chars=length)
        served = ctx.kb(body.model.removeprefix(MODEL_PREFIX), "model")
        record.set(kb_sha256=served.kb.sha256)
        try:
            evidence = await served.call(lambda kb: grounding.gather(kb, query))
        except KnowledgeBaseError as exc:
            raise ApiError(400, f"messages: the last user message is not a usable query ({exc})",
                           code="invalid_request", param="messages") from exc
        llm_sha256, usage = None, Usage(0, 0)
        if not evidence.answerability.answerable:
            answer = grounding.refusal("no_evidence", evidence.language)
        elif mode == "quote":
            answer = grounding.deliver(grounding.quote_drafts(evidence), evidence)
        else:
            llm = ctx.served_llm()
            llm_sha256 = llm.sha256
            record.set(artifact_sha256=llm_sha256)
            output, usage = await generate_json(ctx, request, caller, record, grounding.prompt_messages(evidence),
                                                grounding.output_schema(evidence), grounding.ANSWER_MAX_TOKENS)
            answer = grounding.deliver(grounding.parse_drafts(output, evidence), evidence)
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    ctx.recorder.finish(record, 200, **_audit_fields(evidence, answer, usage))
    report = GroundingReport(mode=mode, kb_sha256=served.kb.sha256, llm_sha256=llm_sha256,
                             retrieved=[RetrievedChunk(chunk_id=hit.chunk_id, score=hit.score)
                                        for hit in evidence.hits],
                             answerability=evidence.answerability, verdicts=answer.checks,
                             refusal_code=answer.refusal_code)
    completion = GroundedCompletion(
        id=f"chatcmpl-{record.id}", created=int(time.time()), model=served.model_id,
        system_fingerprint=f"orbox:{ctx.profile}:{served.kb.sha256}",
        usage=TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                         total_tokens=usage.prompt_tokens + usage.completion_tokens),
        choices=[GroundedChoice(message=GroundedMessage(content=answer.content, refusal=answer.refusal,
                                                        annotations=answer.annotations), finish_reason="stop")],
        orbox=report)
    headers = {"X-Orbox-Kb-Sha256": served.kb.sha256, "X-Orbox-Profile": ctx.profile, "X-Orbox-Model": served.model_id,
               "X-Request-Id": record.id, **({"X-Orbox-Artifact-Sha256": llm_sha256} if llm_sha256 else {})}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_sse(completion, include_usage), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)


def _refuse_sampling(body: ChatCompletionRequest) -> None:
    for name in FIXED_SAMPLING:
        value = getattr(body, name)
        default = value is None or (name == "temperature" and value == 0) or (
            name == "response_format" and value.type == "text")
        if not default:
            raise ApiError(400, f"{name}: a kb: model answers deterministically (temperature 0, a fixed seed, "
                           f"grammar-constrained cited statements), so it takes no {name}; found {value!r}",
                           code="invalid_request", param=name)


def _query(body: ChatCompletionRequest) -> str:
    """The last user message: the question the KB answers (earlier turns are not grounded, so not used)."""
    users = [message.text() for message in body.messages if message.role == "user"]
    if not users:
        raise ApiError(400, "messages: expected a user message holding the question, found none",
                       code="invalid_request", param="messages")
    return users[-1]


async def generate_json(ctx: ApiContext, request: Request, caller: Caller, record: RequestRecord,
                        messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> tuple[str, Usage]:
    """The LLM's JSON, held to `schema` by its grammar, at temperature 0, within the request's deadline.

    Shared by every server-side generation whose output the server checks before delivering it
    (grounded answers, clinical scenarios): admission queue, LLM worker, cancellation on timeout.
    """
    deadline = record.started + ctx.deadline_s(request)
    params = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
              "response_format": {"type": "json_object", "schema": schema}}
    try:
        async with ctx.admission.slot(caller.rank, deadline) as waited:
            record.set(queued_ms=round(waited * 1e3, 3))
            stream = ctx.supervisor.llm.submit(params, kind="chat", request_id=record.id,
                                               loop=asyncio.get_running_loop())
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    return await _collect(stream, record)
            except TimeoutError as exc:
                raise ApiError(504, "the request's deadline passed while the LLM wrote its answer",
                               code="deadline_exceeded") from exc
            finally:
                if not stream.finished:
                    stream.cancel()
    except (QueueFull, QueueTimeout, Unavailable) as exc:
        raise admission_error(exc) from exc


async def _collect(stream: TokenStream, record: RequestRecord) -> tuple[str, Usage]:
    pieces = []
    async for event in stream:
        if isinstance(event, Token):
            record.token()
            pieces.append(event.text)
        elif isinstance(event, RequestFailed):
            raise worker_error(event)
        else:
            return "".join(pieces), event.usage
    raise ApiError(503, "the LLM worker ended the stream early", code="worker_lost", retry_after_s=5)


def _audit_fields(evidence: Evidence, answer: GroundedAnswer, usage: Usage) -> dict[str, Any]:
    """What the audit log keeps of an answer: ids, hashes, verdicts and codes, never a word of text."""
    hits = {hit.chunk_id: hit for hit in evidence.hits}
    cited = dict.fromkeys(annotation.kb_citation.chunk_id for annotation in answer.annotations)
    return {"retrieved_chunk_ids": [hit.chunk_id for hit in evidence.hits],
            "cited_chunks": [{"chunk_id": chunk_id, "sha256": text_sha256(hits[chunk_id].text)} for chunk_id in cited],
            "answerability_score": evidence.answerability.score,
            "verdicts": [{"supported": check.supported, "problems": sorted({p.split(":")[0] for p in check.problems})}
                         for check in answer.checks],
            "refusal_code": answer.refusal_code, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens}


def _sse(completion: GroundedCompletion, include_usage: bool) -> Iterator[bytes]:
    """The checked answer as OpenAI chunks: role, one content (or refusal) chunk with its citations, finish, [DONE]."""
    whole = completion.model_dump(mode="json")
    head = {key: whole[key] for key in ("id", "created", "model", "system_fingerprint")}
    message = whole["choices"][0]["message"]
    delta = ({"content": message["content"], "annotations": message["annotations"]} if message["content"] is not None
             else {"refusal": message["refusal"]})
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                            "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
               "orbox": whole["orbox"]},
              {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}]
    if include_usage:
        chunks.append({"choices": [], "usage": whole["usage"]})
    for chunk in chunks:
        body = {**head, "object": "chat.completion.chunk", **chunk}
        yield f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
    yield b"data: [DONE]\n\n"
