"""The `llm` worker: llama-cpp-python on the bundle's sha256-checked GGUF, one token per loop turn.

Protocol (appliance.protocol; see worker_process for the common part):

- `Generate(id, kind, params)`: queue a request. `params` are OpenAI-style: prompt (completion) or
  messages (chat), max_tokens, temperature, top_p, top_k, min_p, seed, stop,
  repeat/presence/frequency penalties, response_format (chat, json_object).
  Temperature 0 and a fixed seed unless asked otherwise: the same question gets the same answer.
  The worker answers with a `Token` per decoded piece of text and then exactly one `Done`
  (finish reason and usage) or `RequestFailed` (code and message).
- `Cancel(id)`: drop a queued request or stop the running one after the current token
  (finish_reason "cancelled").
- `Configure(threads, batch)`: the thermal governor sheds load (or restores it); answered by `Configured`.

The loop does one bounded step of the running sequence (one prompt chunk or one token), then
handles every waiting message, so cancellation acts per token and `progress` (prompt chunks +
tokens sampled) shows whether decoding really moves. Sequences run one after another
today; `Scheduler` is the seam where continuous batching over several llama.cpp sequences goes.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from appliance.model_bundle import checked_llm_gguf
from appliance.protocol import (
    Cancel,
    Configure,
    Configured,
    Done,
    Generate,
    GenerationKind,
    Op,
    Ready,
    RequestFailed,
    Token,
    Usage,
)
from appliance.worker_process import WorkerRuntime

DEFAULT_SEED = 1234  # clinical determinism: identical requests give identical answers


@dataclass
class Sequence:
    id: str
    kind: GenerationKind
    params: dict[str, Any]
    generation: Any = None  # llm_generation.Generation once running
    tokens: int = 0  # text events sent


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

        from appliance.llm_generation import PrefillCache

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
        self.prefill_cache = PrefillCache()
        self.send(Ready({
            "artifact": artifact.relpath, "sha256": artifact.sha256,
            "quant_type": artifact.entry.get("quant_type"), "n_ctx": self.llm.n_ctx(),
            "threads": self.threads, "batch": self.batch}))
        self.start_heartbeats()
        while not self.stopping:
            self.drain_ops(timeout_s=0.0 if self.scheduler.pending else 0.5)
            self.pending = self.scheduler.pending
            self._step()
            self.pending = self.scheduler.pending
        for sequence in [self.scheduler.running, *self.scheduler.waiting]:
            if sequence is not None:
                self._error(sequence, "worker_stopping", "the LLM worker is shutting down")

    def beat_details(self) -> dict[str, Any]:
        return {"threads": self.threads, "batch": self.batch}

    def handle_op(self, message: Op) -> None:
        if isinstance(message, Generate):
            self._admit(message)
        elif isinstance(message, Cancel):
            sequence = self.scheduler.cancel(message.id)
            if sequence is not None:
                self._finish(sequence, "cancelled")
        elif isinstance(message, Configure):
            self._configure(message.threads, message.batch)
        else:
            super().handle_op(message)

    def _admit(self, message: Generate) -> None:
        params = {"temperature": 0.0, **message.params}
        self.scheduler.waiting.append(Sequence(message.id, message.kind, params))

    def _step(self) -> None:
        """Decode one token of the running sequence (starting the next one if idle)."""
        from appliance.llm_generation import Generation, RequestError

        scheduler = self.scheduler
        if scheduler.running is None:
            if not scheduler.waiting:
                return
            sequence = scheduler.waiting.popleft()
            try:
                sequence.generation = Generation(self.llm, sequence.kind, sequence.params, DEFAULT_SEED,
                                                 self.prefill_cache)
            except RequestError as exc:
                self._error(sequence, exc.code, str(exc))
                return
            scheduler.running = sequence
        sequence = scheduler.running
        text, finish_reason = sequence.generation.step()
        self.progress += 1  # a prompt chunk or a token, even one that completes no UTF-8 character yet
        if text:
            self.send(Token(sequence.id, text, sequence.tokens))
            sequence.tokens += 1
        if finish_reason:
            self._finish(sequence, finish_reason)

    def _finish(self, sequence: Sequence, finish_reason: str) -> None:
        generation = sequence.generation
        usage = Usage(prompt_tokens=len(generation.prompt_tokens) if generation else 0,
                      completion_tokens=generation.decoded if generation else 0)
        self._close(sequence)
        self.send(Done(sequence.id, finish_reason, usage))

    def _error(self, sequence: Sequence, code: str, message: str) -> None:
        self._close(sequence)
        self.send(RequestFailed(sequence.id, code, message))

    def _close(self, sequence: Sequence) -> None:
        if self.scheduler.running is sequence:
            self.scheduler.running = None
        if sequence.generation is not None:
            sequence.generation.close()

    def _configure(self, threads: int, batch: int) -> None:
        """Thermal load shedding: fewer threads and a smaller prompt batch, applied from the next token."""
        import llama_cpp

        self.threads = max(1, min(threads, len(self.spec.cores)))
        self.batch = max(1, min(batch, self.profile.llm.batch))
        llama_cpp.llama_set_n_threads(self.llm.ctx, self.threads, self.threads)
        self.llm.n_batch = self.batch
        self.send(Configured(self.threads, self.batch))
