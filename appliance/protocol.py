"""The messages between the supervisor and its workers, the worker states and a worker's typed status.

A worker is a spawned process joined to the supervisor by one duplex `multiprocessing` pipe; every
message below is a frozen dataclass that crosses it pickled (module and class by name, so both ends
import this module). Supervisor -> worker messages are *ops*; worker -> supervisor messages are
*events*. Every worker understands `Stop`; every worker sends `Ready` or `WorkerFailed` once, then
`Heartbeat`s (see worker_process).

How a chat request reaches the LLM worker, and how its tokens come back::

    POST /v1/chat/completions      appliance.api.routes.llm.chat_completions (request body: api.schemas)
      -> LlmClient.submit()        appliance.clients, in the server's process; returns a TokenStream
      -> Generate(id, kind, params) over the llm worker's pipe (appliance.worker_handle.WorkerHandle.send)
      -> LlmWorker.handle_op()     appliance.llm_worker, in its own process: queue, then one token per turn
      <- Token ... then Done | RequestFailed, read by WorkerHandle's reader thread
      <- LlmClient.dispatch()      routes each event to its TokenStream, which the route streams as SSE

Embeddings take the same road through EncoderClient, `Embed`/`Rerank` and `Embedded`/`Reranked`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

WorkerName = Literal["video", "encoder", "llm"]
WORKER_NAMES: tuple[WorkerName, ...] = get_args(WorkerName)  # also the start order: the surgical video first
GenerationKind = Literal["completion", "chat"]


class WorkerState(enum.StrEnum):
    """Where one worker is in its life, as the supervisor sees it (worker_handle owns the transitions)."""

    STARTING = "starting"  # spawned, not ready yet
    READY = "ready"
    STALLED = "stalled"  # being killed: SIGTERM, then SIGKILL after the grace
    RESTARTING = "restarting"  # waiting out the backoff
    STOPPED = "stopped"  # deliberately: shutdown or the thermal governor
    FAILED = "failed"  # the worker refused to serve (a bad sha256, a missing device)


# ---------------------------------------------------------------------- supervisor -> worker (ops)

@dataclass(frozen=True)
class Stop:
    """Finish up and exit (every worker)."""


@dataclass(frozen=True)
class Generate:
    """Queue one generation on the LLM worker; `params` are OpenAI-style sampling arguments."""

    id: str
    kind: GenerationKind
    params: dict[str, Any]


@dataclass(frozen=True)
class Cancel:
    """Drop a queued generation, or stop the running one after its current token."""

    id: str


@dataclass(frozen=True)
class Configure:
    """Thermal load shedding on the LLM worker (or restoring the load)."""

    threads: int
    batch: int


@dataclass(frozen=True)
class Embed:
    id: str
    texts: list[str]


@dataclass(frozen=True)
class Rerank:
    id: str
    query: str
    documents: list[str]


Op = Stop | Generate | Cancel | Configure | Embed | Rerank
EncoderOp = Embed | Rerank


# ---------------------------------------------------------------------- worker -> supervisor (events)

@dataclass(frozen=True)
class Ready:
    """Loaded and warmed up; `info` names what was loaded (artifact, sha256, ...) for /v1/models and status."""

    info: dict[str, Any]


@dataclass(frozen=True)
class WorkerFailed:
    """A permanent refusal to serve; the process then exits with FAILED_EXIT."""

    reason: str


@dataclass(frozen=True)
class Heartbeat:
    """Liveness; `progress` moves only when work gets done, `pending` is the work waiting for it."""

    progress: int
    pending: int
    details: dict[str, Any] = field(default_factory=dict)  # worker-specific (video: dropped, latency, ...)

    def fields(self) -> dict[str, Any]:
        """The flat form shown as a worker's `last_progress` in status.json."""
        return {"progress": self.progress, "pending": self.pending, **self.details}


@dataclass(frozen=True)
class Configured:
    threads: int
    batch: int


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Token:
    """Text decoded for one request; `index` counts the text events of that request."""

    id: str
    text: str
    index: int


@dataclass(frozen=True)
class Done:
    id: str
    finish_reason: str
    usage: Usage


@dataclass(frozen=True)
class RequestFailed:
    """One request ended with an error; `code` is machine-readable (e.g. context_length_exceeded)."""

    id: str
    code: str
    message: str


@dataclass(frozen=True)
class Embedded:
    id: str
    embeddings: np.ndarray  # float32 (n, dim)


@dataclass(frozen=True)
class Reranked:
    id: str
    scores: np.ndarray  # float32 (n,)


GenerationEvent = Token | Done | RequestFailed
EncoderReply = Embedded | Reranked | RequestFailed
Event = Ready | WorkerFailed | Heartbeat | Configured | GenerationEvent | Embedded | Reranked


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as status.json and /api/status show it (`dataclasses.asdict` gives the JSON shape)."""

    name: WorkerName
    pid: int | None
    state: WorkerState
    restarts: int
    detail: str | None
    cores: list[int]
    info: dict[str, Any]
    last_progress: dict[str, Any]
    last_heartbeat_age_s: float | None
    last_progress_age_s: float | None
