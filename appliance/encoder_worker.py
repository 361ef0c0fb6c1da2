"""The `encoder` worker: the bundle's INT8 embedding and reranker models via inference.encoder.

Protocol (appliance.protocol): `Embed(id, texts)` -> `Embedded(id, embeddings)` float32 (n, dim);
`Rerank(id, query, documents)` -> `Reranked(id, scores)` float32 (n,); any failure ->
`RequestFailed(id, code, message)`. A role whose files fail their sha256 check is refused and
reported in the ready info; the worker serves the roles that passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from appliance.model_bundle import encoder_roles
from appliance.protocol import Embed, Embedded, Op, Ready, RequestFailed, Rerank, Reranked
from appliance.worker_process import WorkerFailure, WorkerRuntime
from primitives.artifacts import load_manifest


class EncoderWorker(WorkerRuntime):
    def run(self) -> None:
        try:
            from inference import encoder as runtime
        except ImportError as exc:
            raise WorkerFailure(f"the box-side encoder loader is not installed ({exc})") from exc
        present = encoder_roles(load_manifest(self.spec.bundle_dir))
        if not present:
            raise WorkerFailure(f"{self.spec.bundle_dir}/manifest.json lists no encoder "
                                "(no encoder/<role>/encoder.json); build one with `orbox quantize encoder`")
        self.encoders: dict[str, Any] = {}
        refused: dict[str, str] = {}
        for role in present:
            try:
                self.encoders[role] = runtime.load_encoder(self.spec.bundle_dir, self.profile, role=role,
                                                           threads=len(self.spec.cores))
            except runtime.EncoderRuntimeError as exc:
                refused[role] = str(exc)
        if not self.encoders:
            raise WorkerFailure("; ".join(f"{role}: {reason}" for role, reason in refused.items()))
        self._batch_size = int(getattr(runtime, "BATCH_SIZE", 16))
        self.send(Ready({
            "roles": {role: {"model_id": enc.model_id, "sha256": enc.sha256, "dim": enc.dim,
                             "backend": enc.backend_name} for role, enc in self.encoders.items()},
            "refused": refused}))
        self.start_heartbeats()
        while not self.stopping:
            self.drain_ops(timeout_s=0.5)

    def handle_op(self, message: Op) -> None:
        if not isinstance(message, Embed | Rerank):
            super().handle_op(message)
            return
        role = "embedding" if isinstance(message, Embed) else "reranker"
        encoder = self.encoders.get(role)
        if encoder is None:
            self.send(RequestFailed(message.id, "model_not_loaded", f"no {role} model is loaded on this box"))
            return
        self.pending = 1
        try:
            if isinstance(message, Embed):
                reply: Embedded | Reranked = Embedded(message.id, self._in_batches(encoder.embed, list(message.texts)))
            else:
                query = message.query
                reply = Reranked(message.id, self._in_batches(lambda docs: encoder.rerank(query, docs),
                                                              list(message.documents)))
        except Exception as exc:  # noqa: BLE001 - report any inference failure to the caller, keep serving
            self.send(RequestFailed(message.id, "inference_failed", str(exc)))
            return
        finally:
            self.pending = 0
        self.send(reply)

    def _in_batches(self, run: Callable[[list[str]], np.ndarray], items: list[str]) -> np.ndarray:
        """Run the loader's own batches one by one, counting progress after each, so a long request
        is not mistaken for a hang (same batch boundaries as the loader: identical INT8 numbers)."""
        size = self._batch_size
        parts = []
        for start in range(0, len(items), size):
            parts.append(run(items[start:start + size]))
            self.progress += 1
        return np.concatenate(parts) if parts else run([])
