"""The LLM resource: POST /v1/chat/completions and /v1/completions on the supervisor's LLM worker, GET /v1/models.

A request becomes `LlmClient.submit` (appliance.clients), which sends a `Generate` to the LLM worker
and hands back a TokenStream of `Token`, then `Done` or `RequestFailed` (appliance.protocol).

Clinical defaults: temperature 0 and a fixed seed unless the client asks otherwise (the worker
applies them), so the same request gives the same answer. Every response names the artifact and
profile (headers and `system_fingerprint`). The first worker event is awaited before any byte is
sent, so an over-long prompt is a real 400 even when streaming; a client that disconnects
cancels its generation within a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from appliance.api.admission import QueueFull, QueueTimeout
from appliance.api.catalog import ModelInfo
from appliance.api.deps import ApiContext, AuthedCaller, Caller, Ctx
from appliance.api.errors import ApiError, admission_error, worker_error
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.routes import grounded
from appliance.api.schemas import (
    MAX_SCHEMA_CHARS,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    CompletionChoice,
    CompletionRequest,
    GroundedCompletion,
    ModelList,
    ResponseFormat,
    TextCompletion,
    TokenUsage,
    json_or_stream,
)
from appliance.clients import TokenStream, Unavailable
from appliance.knowledge_bases import MODEL_PREFIX
from appliance.llm_generation import RequestError, schema_grammar
from appliance.protocol import Done, GenerationEvent, GenerationKind, RequestFailed, Token, Usage

router = APIRouter(tags=["openai"])
_CLIENT_CLOSED = 499  # nginx's convention for "the client went away"; recorded in the audit log only


def _sampling(body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": max_tokens}
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(body, name)
        if value is not None:
            params[name] = value
    if body.stop_list():
        params["stop"] = body.stop_list()
    return params


def _response_format(response_format: ResponseFormat) -> dict[str, Any]:
    """The worker's response_format param: none for text, JSON, or JSON held to a schema that llama.cpp compiles
    (compiled here first, so a schema it cannot compile is a 400 naming the field)."""
    if response_format.type == "text":
        return {}
    if response_format.json_schema is None:
        return {"response_format": {"type": "json_object"}}
    schema = response_format.json_schema.schema_
    param = "response_format.json_schema.schema"
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise ApiError(400, f"{param}: at most {MAX_SCHEMA_CHARS} characters of JSON", code="invalid_request",
                       param=param)
    try:
        schema_grammar(schema)
    except RequestError as exc:
        raise ApiError(400, f"{param}: {exc}", code="invalid_request", param=param) from exc
    return {"response_format": {"type": "json_object", "schema": schema}}


class Generation:
    """One admitted request from submit to its last event, streamed or collected."""

    def __init__(self, ctx: ApiContext, request: Request, record: RequestRecord, model: ModelInfo,
                 kind: GenerationKind,
                 params: dict[str, Any], deadline: float):
        self.ctx, self.request, self.record, self.model = ctx, request, record, model
        self.kind, self.params, self.deadline = kind, params, deadline
        self.created = int(time.time())
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.response_id = f"{prefix}-{record.id}"
        self.finish_reason: str | None = None
        self.stream: TokenStream | None = None
        self.text: list[str] = []
        self.worker_usage: Usage | None = None  # from the worker's Done
        self.expired = False
        self._token_template: tuple[str, str] | None = None
        self.slot: contextlib.AsyncExitStack | None = None
        self.status, self.outcome = _CLIENT_CLOSED, {}
        self._closed = False

    async def close(self) -> None:
        """End of a streamed response, however it ended: cancel, record and free the slot, exactly once."""
        if self._closed:
            return
        self._closed = True
        if self.stream is not None and not self.stream.finished:
            self.stream.cancel()
        self.ctx.recorder.finish(self.record, self.status, completion_tokens=self.completion_tokens, **self.outcome)
        if self.slot is not None:
            await self.slot.aclose()

    # ------------------------------------------------------------------ event source

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """Worker events; past the deadline the generation is cancelled and ends with a deadline error.

        One timer per request (not one per token): when it fires the worker is told to cancel, and
        the worker's closing event is turned into the error.
        """
        assert self.stream is not None
        timer = asyncio.get_running_loop().call_later(max(0.0, self.deadline - time.monotonic()), self._expire)
        try:
            async for event in self.stream:
                if self.expired and not isinstance(event, Token):
                    yield RequestFailed(self.stream.id, "deadline_exceeded",
                                        f"the request's deadline ({self.ctx.settings.deadline_s:g}s or "
                                        "X-Orbox-Deadline) passed during generation")
                    return
                if isinstance(event, Token):
                    self.record.token()
                    self.text.append(event.text)
                elif isinstance(event, Done):
                    self.finish_reason = event.finish_reason or "stop"
                    self.worker_usage = event.usage
                    self.record.set(prompt_tokens=event.usage.prompt_tokens)
                yield event
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        if self.stream is not None and not self.stream.finished:
            self.stream.cancel()

    @property
    def completion_tokens(self) -> int:
        """The worker's token count (text events can merge tokens, e.g. around a held-back stop string)."""
        return self.worker_usage.completion_tokens if self.worker_usage is not None else self.record.tokens

    def usage(self) -> TokenUsage:
        prompt = self.worker_usage.prompt_tokens if self.worker_usage is not None else 0
        return TokenUsage(prompt_tokens=prompt, completion_tokens=self.completion_tokens,
                          total_tokens=prompt + self.completion_tokens)

    # ------------------------------------------------------------------ shapes

    def answer(self, text: str, finish_reason: str) -> ChatCompletion | TextCompletion:
        """The whole (non-streamed) response."""
        common = {"id": self.response_id, "created": self.created, "model": self.model.id,
                  "system_fingerprint": self.model.fingerprint, "usage": self.usage()}
        if self.kind == "chat":
            return ChatCompletion(choices=[ChatChoice(message=AssistantMessage(content=text),
                                                      finish_reason=finish_reason)], **common)
        return TextCompletion(choices=[CompletionChoice(text=text, finish_reason=finish_reason)], **common)

    def _delta(self, text: str | None, finish_reason: str | None) -> dict[str, Any]:
        """One streamed choice: a chat delta or a completion's text piece."""
        if self.kind == "chat":
            return {"index": 0, "delta": {"content": text} if text else {}, "logprobs": None,
                    "finish_reason": finish_reason}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}

    def chunk(self, choices: list[dict[str, Any]], usage: TokenUsage | None = None) -> dict[str, Any]:
        """One SSE chunk (OpenAI's streaming shape, which the SDKs parse leniently)."""
        body = {"id": self.response_id, "object": "chat.completion.chunk" if self.kind == "chat" else "text_completion",
                "created": self.created, "model": self.model.id, "system_fingerprint": self.model.fingerprint,
                "choices": choices}
        if usage is not None:
            body["usage"] = usage.model_dump()
        return body

    def token_chunk(self, text: str) -> bytes:
        """One SSE token chunk; the JSON around the text is rendered once per request, not per token."""
        if self._token_template is None:
            sentinel = "\u0000orbox-text\u0000"
            rendered = json.dumps(self.chunk([self._delta(sentinel, None)]), ensure_ascii=False,
                                  separators=(",", ":"))
            head, tail = rendered.split(json.dumps(sentinel, ensure_ascii=False))
            self._token_template = ("data: " + head, tail + "\n\n")
        head, tail = self._token_template
        return (head + json.dumps(text, ensure_ascii=False) + tail).encode()

    @staticmethod
    def _finish(reason: str | None) -> str:
        return "stop" if reason in (None, "cancelled") else reason


def _cancel_unless_streaming(generation: Generation) -> None:
    """Leaving the handler with an unfinished, non-streamed generation (an exception): stop it."""
    if generation.stream is not None and not generation.stream.finished:
        generation.stream.cancel()


async def _watch_disconnect(request: Request, stream: TokenStream) -> None:
    """Cancel the generation when the client goes away (the body is already read: only a disconnect comes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            stream.cancel()
            return


async def _run(ctx: ApiContext, request: Request, caller: Caller, body: ChatCompletionRequest | CompletionRequest,
               kind: GenerationKind, endpoint: str) -> Response:
    record = RequestRecord(endpoint, caller.name)
    if isinstance(body, ChatCompletionRequest) and body.orbox is not None:
        error = ApiError(400, f"orbox: only for knowledge-base models (kb:<name>), found model {body.model!r}",
                         code="invalid_request", param="orbox")
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    if kind == "chat":
        assert isinstance(body, ChatCompletionRequest)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        digest, length = prompt_digest(messages)
        params = {"messages": messages, **_sampling(body, body.max_completion_tokens or body.max_tokens)}
    else:
        assert isinstance(body, CompletionRequest)
        prompt = body.prompt_text()
        if prompt is None:
            raise ApiError(400, "prompt: this box serves one prompt per request, found a list of "
                           f"{len(body.prompt)}", code="invalid_request", param="prompt")
        digest, length = prompt_digest(prompt)
        params = {"prompt": prompt, **_sampling(body, body.max_tokens)}
    record.set(model=body.model, prompt_sha256=digest, prompt_chars=length, stream=body.stream)
    try:
        if isinstance(body, ChatCompletionRequest) and body.response_format is not None:
            params.update(_response_format(body.response_format))
        model = ctx.llm_model(body.model)
        record.set(artifact_sha256=model.sha256, profile=model.profile)
        deadline = record.started + ctx.deadline_s(request)
        generation = Generation(ctx, request, record, model, kind, params, deadline)
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(_cancel_unless_streaming, generation)
            waited = await stack.enter_async_context(ctx.admission.slot(caller.rank, deadline))
            record.set(queued_ms=round(waited * 1e3, 3))
            try:
                generation.stream = ctx.supervisor.llm.submit(params, kind=kind, request_id=record.id,
                                                              loop=asyncio.get_running_loop())
            except Unavailable as exc:
                raise admission_error(exc) from exc
            events = generation.events()
            first = await anext(events)
            if isinstance(first, RequestFailed):
                raise worker_error(first)
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                generation.slot = stack.pop_all()  # the slot now belongs to the streaming response
                return _GenerationStream(generation, _sse(generation, first, events, include_usage),
                                         headers={**model.headers(), "X-Request-Id": record.id,
                                                  "Cache-Control": "no-cache"})
            return await _collect(ctx, request, generation, first, events)
    except (QueueFull, Unavailable, QueueTimeout) as exc:
        error = admission_error(exc)
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})


async def _collect(ctx: ApiContext, request: Request, generation: Generation, first: GenerationEvent,
                   events: AsyncIterator[GenerationEvent]) -> Response:
    record = generation.record
    watcher = asyncio.create_task(_watch_disconnect(request, generation.stream))
    last = first
    try:
        if isinstance(first, Token):
            async for event in events:
                last = event
    finally:
        watcher.cancel()
    if isinstance(last, RequestFailed):
        error = worker_error(last)
        ctx.recorder.finish(record, error.status, error=error.code, completion_tokens=generation.completion_tokens)
        return error.response({"X-Request-Id": record.id})
    reason = generation.finish_reason
    status = _CLIENT_CLOSED if reason == "cancelled" else 200
    ctx.recorder.finish(record, status, completion_tokens=generation.completion_tokens, finish_reason=reason)
    text = "".join(generation.text)
    answer = generation.answer(text, generation._finish(reason))
    return JSONResponse(answer.model_dump(), headers={**generation.model.headers(), "X-Request-Id": record.id})


def _sse_line(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class _GenerationStream(StreamingResponse):
    """An SSE response that closes its generation even if the client left before the first byte."""

    def __init__(self, generation: Generation, content: AsyncIterator[bytes], headers: dict[str, str]):
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._generation = generation

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._generation.close()


async def _sse(generation: Generation, first: GenerationEvent, events: AsyncIterator[GenerationEvent],
               include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE body: role chunk, one chunk per token, the finish chunk, optional usage, `[DONE]`."""
    if generation.kind == "chat":
        yield _sse_line(generation.chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                           "logprobs": None, "finish_reason": None}]))
    event = first
    while True:
        if isinstance(event, Token):
            yield generation.token_chunk(event.text)
        elif isinstance(event, Done):
            reason = generation.finish_reason
            generation.status = _CLIENT_CLOSED if reason == "cancelled" else 200
            generation.outcome = {"finish_reason": reason}
            yield _sse_line(generation.chunk([generation._delta(None, generation._finish(reason))]))
            if include_usage:
                yield _sse_line(generation.chunk([], usage=generation.usage()))
            break
        else:
            error = worker_error(event)
            generation.status, generation.outcome = error.status, {"error": error.code}
            yield _sse_line(error.body())
            break
        event = await anext(events, RequestFailed(generation.record.id, "worker_lost", "the stream ended early"))
    yield _sse_line("[DONE]")


@router.post("/v1/chat/completions", responses=json_or_stream(ChatCompletion | GroundedCompletion))
async def chat_completions(body: ChatCompletionRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """OpenAI chat completion (streaming with `stream: true`, ending with `data: [DONE]`).

    With `model: kb:<name>` the answer is grounded in that knowledge base (routes.grounded).
    """
    if body.model.startswith(MODEL_PREFIX):
        return await grounded.chat_completion(ctx, request, caller, body)
    return await _run(ctx, request, caller, body, "chat", "/v1/chat/completions")


@router.post("/v1/completions", responses=json_or_stream(TextCompletion))
async def completions(body: CompletionRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """OpenAI (legacy) text completion, one prompt per request."""
    return await _run(ctx, request, caller, body, "completion", "/v1/completions")


@router.get("/v1/models")
async def list_models(ctx: Ctx, caller: AuthedCaller) -> ModelList:
    """Each model with its artifact sha256, profile and quant type."""
    record = RequestRecord("/v1/models", caller.name)
    listing = ModelList(data=[m.card() for m in ctx.models()])
    ctx.recorder.finish(record, 200, models=len(listing.data))
    return listing
