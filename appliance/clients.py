"""The in-process API the HTTP layer (issue 7) uses, one client per worker.

    sup.llm.submit({"prompt": "...", "max_tokens": 64}) -> TokenStream   (iterate, or `async for`)
    sup.llm.cancel(request_id); sup.llm.queue_depth(); sup.llm.admission() -> None or raises Unavailable
    sup.encoder.embed(["text", ...]) -> np.ndarray; sup.encoder.submit("embed", ...) -> Future
    sup.video.latest_jpeg() -> bytes | None; sup.video.stats()

Everything crosses a real process boundary (the worker's pipe); these objects are thread-safe and
never block on the worker except where documented (`embed`, iterating a stream).
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
from typing import Any

import numpy as np

from appliance.frame_ring import FrameRing
from appliance.worker_handle import WorkerHandle

_TERMINAL = ("done", "error")


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


class TokenStream:
    """Events of one generation: {"type": "token", "text", "index"}..., then one "done" or "error".

    Iterate it in a thread (`for event in stream`), or `async for event in stream` when created by
    `LlmClient.submit(..., loop=asyncio.get_running_loop())`.
    """

    def __init__(self, request_id: str, cancel: Callable[[str], bool], loop: asyncio.AbstractEventLoop | None):
        self.id = request_id
        self._cancel = cancel
        self._loop = loop
        self._queue: queue.SimpleQueue | asyncio.Queue = asyncio.Queue() if loop else queue.SimpleQueue()
        self.finished = False

    def deliver(self, event: dict[str, Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        else:
            self._queue.put(event)

    def cancel(self) -> bool:
        return self._cancel(self.id)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._loop is not None:
            raise TypeError("this stream was bound to an event loop; use `async for`")
        while not self.finished:
            event = self._queue.get()
            self.finished = event["type"] in _TERMINAL
            yield event

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._loop is None:
            raise TypeError("pass loop= to submit() to iterate asynchronously")
        while not self.finished:
            event = await self._queue.get()
            self.finished = event["type"] in _TERMINAL
            yield event

    def result(self) -> dict[str, Any]:
        """Block until the end; the whole text, finish reason and usage (raises GenerationError)."""
        pieces, final = [], {}
        for event in self:
            if event["type"] == "token":
                pieces.append(event["text"])
            final = event
        if final.get("type") == "error":
            raise GenerationError(final.get("code", "error"), final.get("message", ""))
        return {"text": "".join(pieces), "finish_reason": final.get("finish_reason"), "usage": final.get("usage")}


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
        if self._handle.state != "ready":
            raise Unavailable(f"the LLM worker is {self._handle.state}"
                              + (f" ({self._handle.detail})" if self._handle.detail else ""), retry_after_s=5)
        if self.queue_depth() >= self._max_queue:
            raise Unavailable(f"the LLM queue is full ({self._max_queue} requests)", retry_after_s=2)

    def submit(self, params: dict[str, Any], kind: str = "completion", request_id: str | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> TokenStream:
        """Queue a generation; `params` are llama-cpp-python create_(chat_)completion arguments."""
        self.admission()
        stream = TokenStream(request_id or uuid.uuid4().hex, self.cancel, loop)
        with self._lock:
            self._streams[stream.id] = stream
        self._handle.note_work_submitted()
        if not self._handle.send({"op": "generate", "id": stream.id, "kind": kind, "params": params}):
            self._close(stream.id, {"type": "error", "id": stream.id, "code": "worker_unavailable",
                                    "message": "the LLM worker went away before the request was sent"})
        return stream

    def cancel(self, request_id: str) -> bool:
        with self._lock:
            known = request_id in self._streams
        return known and self._handle.send({"op": "cancel", "id": request_id})

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._streams)

    def dispatch(self, event: dict[str, Any]) -> None:
        """Route a worker event to its stream (reader thread)."""
        if event.get("type") in _TERMINAL:
            self._close(event.get("id"), event)
            return
        with self._lock:
            stream = self._streams.get(event.get("id"))
        if stream is not None:
            stream.deliver(event)

    def fail_all(self, reason: str) -> None:
        """The worker died or was stopped: every open request ends with an error, none hangs."""
        with self._lock:
            ids = list(self._streams)
        for request_id in ids:
            self._close(request_id, {"type": "error", "id": request_id, "code": "worker_lost", "message": reason})

    def _close(self, request_id: Any, event: dict[str, Any]) -> None:
        with self._lock:
            stream = self._streams.pop(request_id, None)
        if stream is not None:
            stream.deliver(event)


class EncoderClient:
    def __init__(self, handle: WorkerHandle):
        self._handle = handle
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def submit(self, op: str, **payload: Any) -> Future:
        """op "embed" (texts=[...]) or "rerank" (query=..., documents=[...]); the Future holds the reply."""
        future: Future = Future()
        if self._handle.state != "ready":
            future.set_exception(Unavailable(f"the encoder worker is {self._handle.state}"
                                             + (f" ({self._handle.detail})" if self._handle.detail else ""), 5))
            return future
        request_id = f"e{next(self._ids)}"
        with self._lock:
            self._futures[request_id] = future
        self._handle.note_work_submitted()
        if not self._handle.send({"op": op, "id": request_id, **payload}):
            self._resolve(request_id, {"type": "error", "code": "worker_unavailable",
                                       "message": "the encoder worker went away"})
        return future

    def embed(self, texts: list[str], timeout_s: float = 30.0) -> np.ndarray:
        return self.submit("embed", texts=texts).result(timeout_s)["embeddings"]

    def rerank(self, query: str, documents: list[str], timeout_s: float = 30.0) -> np.ndarray:
        return self.submit("rerank", query=query, documents=documents).result(timeout_s)["scores"]

    def dispatch(self, event: dict[str, Any]) -> None:
        self._resolve(event.get("id"), event)

    def fail_all(self, reason: str) -> None:
        with self._lock:
            ids = list(self._futures)
        for request_id in ids:
            self._resolve(request_id, {"type": "error", "code": "worker_lost", "message": reason})

    def _resolve(self, request_id: Any, event: dict[str, Any]) -> None:
        with self._lock:
            future = self._futures.pop(request_id, None)
        if future is None or future.done():
            return
        if event.get("type") == "error":
            future.set_exception(GenerationError(event.get("code", "error"), event.get("message", "")))
        else:
            future.set_result({k: v for k, v in event.items() if k not in ("type", "id")})


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
        beat = self._handle.heartbeat
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
