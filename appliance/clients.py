"""The in-process API the HTTP layer (issue 7) uses, one client per worker.

    sup.llm.submit({"prompt": "...", "max_tokens": 64}) -> TokenStream   (iterate, or `async for`)
    sup.llm.cancel(request_id); sup.llm.queue_depth(); sup.llm.admission() -> None or raises Unavailable
    sup.encoder.embed(["text", ...]) -> np.ndarray; sup.encoder.submit_embed([...]) -> Future
    sup.video.latest_jpeg() -> bytes | None; sup.video.stats()

Everything crosses a real process boundary (the worker's pipe) as the messages of
appliance.protocol; these objects are thread-safe and never block on the worker except where
documented (`embed`, iterating a stream).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.frame_ring import FrameRing
from appliance.protocol import (
    Cancel,
    Done,
    Embed,
    Embedded,
    EncoderOp,
    EncoderReply,
    Generate,
    GenerationEvent,
    GenerationKind,
    RequestFailed,
    Rerank,
    Token,
    Usage,
    WorkerState,
)
from appliance.worker_handle import WorkerHandle


class Unavailable(Exception):
    """The request cannot be admitted now (HTTP 503 with Retry-After)."""

    def __init__(self, reason: str, retry_after_s: float):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class GenerationError(Exception):
    """The worker ended a request with an error event; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Completion:
    """A whole generation, collected."""

    text: str
    finish_reason: str
    usage: Usage


class TokenStream:
    """Events of one generation: `Token`s, then one `Done` or `RequestFailed` (appliance.protocol).

    Iterate it in a thread (`for event in stream`), or `async for event in stream` when created by
    `LlmClient.submit(..., loop=asyncio.get_running_loop())`.
    """

    def __init__(self, request_id: str, cancel: Callable[[str], bool], loop: asyncio.AbstractEventLoop | None):
        self.id = request_id
        self._cancel = cancel
        self._loop = loop
        self._queue: queue.SimpleQueue | asyncio.Queue = asyncio.Queue() if loop else queue.SimpleQueue()
        self.finished = False

    def deliver(self, event: GenerationEvent) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        else:
            self._queue.put(event)

    def cancel(self) -> bool:
        return self._cancel(self.id)

    def __iter__(self) -> Iterator[GenerationEvent]:
        if self._loop is not None:
            raise TypeError("this stream was bound to an event loop; use `async for`")
        while not self.finished:
            event = self._queue.get()
            self.finished = not isinstance(event, Token)
            yield event

    async def __aiter__(self) -> AsyncIterator[GenerationEvent]:
        if self._loop is None:
            raise TypeError("pass loop= to submit() to iterate asynchronously")
        while not self.finished:
            event = await self._queue.get()
            self.finished = not isinstance(event, Token)
            yield event

    def result(self) -> Completion:
        """Block until the end; the whole text, finish reason and usage (raises GenerationError)."""
        pieces = []
        for event in self:
            if isinstance(event, Token):
                pieces.append(event.text)
            elif isinstance(event, RequestFailed):
                raise GenerationError(event.code, event.message)
            else:
                return Completion("".join(pieces), event.finish_reason, event.usage)
        raise GenerationError("already_read", "this stream was already read to its end")


class LlmClient:
    def __init__(self, handle: WorkerHandle, admission_paused: Callable[[], bool], max_queue: int):
        self._handle = handle
        self._admission_paused = admission_paused
        self._max_queue = max_queue
        self._streams: dict[str, TokenStream] = {}
        self._lock = threading.Lock()

    def admission(self) -> None:
        """Raise Unavailable when a new request would not be served soon."""
        if self._admission_paused():
            raise Unavailable("the LLM is paused by the thermal governor", retry_after_s=30)
        if self._handle.state != WorkerState.READY:
            raise Unavailable(f"the LLM worker is {self._handle.state}"
                              + (f" ({self._handle.detail})" if self._handle.detail else ""), retry_after_s=5)
        if self.queue_depth() >= self._max_queue:
            raise Unavailable(f"the LLM queue is full ({self._max_queue} requests)", retry_after_s=2)

    def submit(self, params: dict[str, Any], kind: GenerationKind = "completion", request_id: str | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> TokenStream:
        """Queue a generation; `params` are llama-cpp-python create_(chat_)completion arguments."""
        self.admission()
        stream = TokenStream(request_id or uuid.uuid4().hex, self.cancel, loop)
        with self._lock:
            self._streams[stream.id] = stream
        self._handle.note_work_submitted()
        if not self._handle.send(Generate(stream.id, kind, params)):
            self._close(RequestFailed(stream.id, "worker_unavailable",
                                      "the LLM worker went away before the request was sent"))
        return stream

    def cancel(self, request_id: str) -> bool:
        with self._lock:
            known = request_id in self._streams
        return known and self._handle.send(Cancel(request_id))

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._streams)

    def dispatch(self, event: GenerationEvent) -> None:
        """Route a worker event to its stream (reader thread)."""
        if not isinstance(event, Token):
            self._close(event)
            return
        with self._lock:
            stream = self._streams.get(event.id)
        if stream is not None:
            stream.deliver(event)

    def fail_all(self, reason: str) -> None:
        """The worker died or was stopped: every open request ends with an error, none hangs."""
        with self._lock:
            ids = list(self._streams)
        for request_id in ids:
            self._close(RequestFailed(request_id, "worker_lost", reason))

    def _close(self, event: Done | RequestFailed) -> None:
        with self._lock:
            stream = self._streams.pop(event.id, None)
        if stream is not None:
            stream.deliver(event)


class EncoderClient:
    def __init__(self, handle: WorkerHandle):
        self._handle = handle
        self._futures: dict[str, Future[np.ndarray]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def submit_embed(self, texts: list[str]) -> Future[np.ndarray]:
        """The Future holds float32 embeddings (n, dim)."""
        return self._submit(lambda request_id: Embed(request_id, texts))

    def submit_rerank(self, query: str, documents: list[str]) -> Future[np.ndarray]:
        """The Future holds float32 scores (n,)."""
        return self._submit(lambda request_id: Rerank(request_id, query, documents))

    def embed(self, texts: list[str], timeout_s: float = 30.0) -> np.ndarray:
        return self.submit_embed(texts).result(timeout_s)

    def rerank(self, query: str, documents: list[str], timeout_s: float = 30.0) -> np.ndarray:
        return self.submit_rerank(query, documents).result(timeout_s)

    def _submit(self, make_op: Callable[[str], EncoderOp]) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        if self._handle.state != WorkerState.READY:
            future.set_exception(Unavailable(f"the encoder worker is {self._handle.state}"
                                             + (f" ({self._handle.detail})" if self._handle.detail else ""), 5))
            return future
        request_id = f"e{next(self._ids)}"
        with self._lock:
            self._futures[request_id] = future
        self._handle.note_work_submitted()
        if not self._handle.send(make_op(request_id)):
            self._resolve(RequestFailed(request_id, "worker_unavailable", "the encoder worker went away"))
        return future

    def dispatch(self, event: EncoderReply) -> None:
        self._resolve(event)

    def fail_all(self, reason: str) -> None:
        with self._lock:
            ids = list(self._futures)
        for request_id in ids:
            self._resolve(RequestFailed(request_id, "worker_lost", reason))

    def _resolve(self, event: EncoderReply) -> None:
        with self._lock:
            future = self._futures.pop(event.id, None)
        if future is None or future.done():
            return
        if isinstance(event, RequestFailed):
            future.set_exception(GenerationError(event.code, event.message))
        else:
            future.set_result(event.embeddings if isinstance(event, Embedded) else event.scores)


class VideoClient:
    """Stats from the video worker's heartbeats and a JPEG preview read from the frame ring.

    The preview is encoded here, in the supervisor process (system cores), on demand and at most
    `preview_fps` times a second, so the status page costs the video core nothing.
    """

    def __init__(self, handle: WorkerHandle, ring: FrameRing | None, pixel_format: str, preview_fps: float,
                 preview_width: int):
        self._handle = handle
        self._ring = ring
        self._pixel_format = pixel_format
        self._min_interval = 1.0 / preview_fps
        self._preview_width = preview_width
        self._cache: tuple[float, int, bytes] | None = None
        self._lock = threading.Lock()

    def attach_ring(self, ring: FrameRing) -> None:
        self._ring = ring

    def stats(self) -> dict[str, Any]:
        heartbeat = self._handle.heartbeat
        beat = heartbeat.fields() if heartbeat is not None else {}
        return {"frames": beat.get("progress", 0), "dropped": beat.get("dropped", 0),
                "latency": beat.get("latency"), "smoke_level": beat.get("smoke_level"),
                "sink_dropped": beat.get("sink_dropped", 0)}

    def latest_jpeg(self, quality: int = 80) -> bytes | None:
        import cv2

        from appliance.video_io import to_bgr

        with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < self._min_interval:
                return self._cache[2]
            latest = self._ring.read_latest() if self._ring is not None else None
            if latest is None:
                return None
            seq, _, frame = latest
            bgr = to_bgr(frame, self._pixel_format)
            height, width = bgr.shape[:2]
            if width > self._preview_width:
                size = (self._preview_width, max(1, round(height * self._preview_width / width)))
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                return None
            self._cache = (now, seq, jpeg.tobytes())
            return self._cache[2]
