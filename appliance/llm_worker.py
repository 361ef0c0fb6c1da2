"""The `llm` worker: llama-cpp-python on the bundle's sha256-checked GGUF, one token per loop turn.

Protocol (see worker_process for the common part):

- {"op": "generate", "id", "kind": "completion"|"chat", "params": {...}}: queue a request. `params`
  are llama-cpp-python's `create_completion` / `create_chat_completion` keyword arguments
  (prompt or messages, max_tokens, temperature, top_p, top_k, seed, stop, response_format, ...).
  The worker answers with {"type": "token", "id", "text", "index"} per decoded token and then
  exactly one of {"type": "done", "id", "finish_reason", "usage"} or
  {"type": "error", "id", "code", "message"}.
- {"op": "cancel", "id"}: drop a queued request or stop the running one after the current token
  (finish_reason "cancelled").
- {"op": "configure", "threads", "batch"}: the thermal governor sheds load (or restores it).

The loop decodes one token of the running sequence, then handles every waiting message, then
heartbeats, so cancellation and stall detection act per token. Sequences run one after another
today; `Scheduler` is the seam where continuous batching over several llama.cpp sequences goes.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.bundle import checked_llm_gguf
from appliance.worker_process import WorkerRuntime

COMPLETION_PARAMS = {"prompt", "suffix", "max_tokens", "temperature", "top_p", "top_k", "min_p", "typical_p",
                     "stop", "seed", "repeat_penalty", "presence_penalty", "frequency_penalty", "logit_bias"}
CHAT_PARAMS = (COMPLETION_PARAMS - {"prompt", "suffix"}) | {"messages", "response_format"}
DEFAULT_SEED = 1234  # clinical determinism: identical requests give identical answers


@dataclass
class Sequence:
    id: str
    kind: str
    params: dict[str, Any]
    stream: Iterator[dict[str, Any]] | None = None
    tokens: int = 0
    finish_reason: str | None = None


@dataclass
class Scheduler:
    """FIFO of requests with one running sequence."""

    waiting: collections.deque[Sequence] = field(default_factory=collections.deque)
    running: Sequence | None = None

    @property
    def pending(self) -> int:
        return len(self.waiting) + (self.running is not None)

    def cancel(self, request_id: str) -> Sequence | None:
        if self.running is not None and self.running.id == request_id:
            return self.running
        for sequence in self.waiting:
            if sequence.id == request_id:
                self.waiting.remove(sequence)
                return sequence
        return None


class LlmWorker(WorkerRuntime):
    def run(self) -> None:
        from llama_cpp import Llama

        llm_spec = self.profile.llm
        artifact = checked_llm_gguf(self.spec.bundle_dir, list(llm_spec.gguf_types))
        self.threads = max(1, min(llm_spec.threads, len(self.spec.cores)))
        self.batch = llm_spec.batch
        self.llm = Llama(model_path=str(artifact.path), n_ctx=llm_spec.context_length, n_batch=self.batch,
                         n_threads=self.threads, n_threads_batch=self.threads, seed=DEFAULT_SEED,
                         n_gpu_layers=self.profile.accelerators.llm_gpu_layers, verbose=False)
        if self.spec.config.llm.warmup:
            self.llm.create_completion("warm up", max_tokens=1, temperature=0.0)
        self.scheduler = Scheduler()
        self.decoded = 0
        self.send({"type": "ready", "info": {
            "artifact": artifact.relpath, "sha256": artifact.sha256,
            "quant_type": artifact.entry.get("quant_type"), "n_ctx": self.llm.n_ctx(),
            "threads": self.threads, "batch": self.batch}})
        while not self.stopping:
            self.drain_ops(timeout_s=0.0 if self.scheduler.pending else self.spec.config.supervisor.heartbeat_s)
            self._step()
            self.heartbeat(self.decoded, self.scheduler.pending, threads=self.threads, batch=self.batch)
        for sequence in [self.scheduler.running, *self.scheduler.waiting]:
            if sequence is not None:
                self._error(sequence, "worker_stopping", "the LLM worker is shutting down")

    def handle_op(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "generate":
            self._admit(message)
        elif op == "cancel":
            sequence = self.scheduler.cancel(str(message.get("id")))
            if sequence is not None:
                self._finish(sequence, "cancelled")
        elif op == "configure":
            self._configure(int(message["threads"]), int(message["batch"]))
        else:
            super().handle_op(message)

    def _admit(self, message: dict[str, Any]) -> None:
        sequence = Sequence(str(message["id"]), str(message.get("kind", "completion")), dict(message["params"]))
        allowed = CHAT_PARAMS if sequence.kind == "chat" else COMPLETION_PARAMS
        unknown = sorted(set(sequence.params) - allowed)
        if sequence.kind not in ("chat", "completion"):
            self._error(sequence, "invalid_request", f"kind must be 'chat' or 'completion', got {sequence.kind!r}")
        elif unknown:
            self._error(sequence, "invalid_request", f"unsupported parameter(s) {unknown}")
        else:
            sequence.params.setdefault("seed", DEFAULT_SEED)
            sequence.params.setdefault("temperature", 0.0)
            self.scheduler.waiting.append(sequence)

    def _step(self) -> None:
        """Decode one token of the running sequence (starting the next one if idle)."""
        scheduler = self.scheduler
        if scheduler.running is None:
            if not scheduler.waiting:
                return
            scheduler.running = sequence = scheduler.waiting.popleft()
            create = self.llm.create_chat_completion if sequence.kind == "chat" else self.llm.create_completion
            sequence.stream = iter(create(**sequence.params, stream=True))
        sequence = scheduler.running
        try:
            chunk = next(sequence.stream)
        except StopIteration:
            self._finish(sequence, sequence.finish_reason or "stop")
            return
        except ValueError as exc:  # llama-cpp-python: prompt longer than the context, bad grammar, ...
            code = "context_length_exceeded" if "context window" in str(exc) else "invalid_request"
            self._error(sequence, code, str(exc))
            return
        choice = chunk["choices"][0]
        text = choice["delta"].get("content") if sequence.kind == "chat" else choice.get("text")
        if choice.get("finish_reason"):
            sequence.finish_reason = choice["finish_reason"]
        if text:
            self.send({"type": "token", "id": sequence.id, "text": text, "index": sequence.tokens})
            sequence.tokens += 1
            self.decoded += 1

    def _finish(self, sequence: Sequence, finish_reason: str) -> None:
        self._close(sequence)
        self.send({"type": "done", "id": sequence.id, "finish_reason": finish_reason,
                   "usage": {"completion_tokens": sequence.tokens}})

    def _error(self, sequence: Sequence, code: str, message: str) -> None:
        self._close(sequence)
        self.send({"type": "error", "id": sequence.id, "code": code, "message": message})

    def _close(self, sequence: Sequence) -> None:
        if self.scheduler.running is sequence:
            self.scheduler.running = None
            if sequence.stream is not None and hasattr(sequence.stream, "close"):
                sequence.stream.close()

    def _configure(self, threads: int, batch: int) -> None:
        """Thermal load shedding: fewer threads and a smaller prompt batch, applied from the next token."""
        import llama_cpp

        self.threads = max(1, min(threads, len(self.spec.cores)))
        self.batch = max(1, min(batch, self.profile.llm.batch))
        llama_cpp.llama_set_n_threads(self.llm.ctx, self.threads, self.threads)
        self.llm.n_batch = self.batch
        self.send({"type": "configured", "threads": self.threads, "batch": self.batch})
