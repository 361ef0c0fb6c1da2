"""One audit record and one set of metrics per API request, never the prompt text.

The record carries time, key name, endpoint, the prompt's sha256 and length, the artifact sha256,
token counts, latency and status. Records are appended by one dedicated thread (the audit log
fsyncs every line), so the event loop never blocks on the disk and a client that disconnects
mid-stream still gets its record written; `close()` drains the queue before the log is closed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from appliance.api.metrics import ApiMetrics
from appliance.audit import AuditLog

log = logging.getLogger("orbox.api")


def prompt_digest(payload: Any) -> tuple[str, int]:
    """sha256 over the canonical JSON of the prompt (or messages) and its length in characters."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, ensure_ascii=False,
                                                                separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), len(text)


@dataclass
class RequestRecord:
    endpoint: str
    key: str | None
    started: float = field(default_factory=time.monotonic)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    fields: dict[str, Any] = field(default_factory=dict)
    first_token_at: float | None = None
    tokens: int = 0

    def set(self, **values: Any) -> None:
        self.fields.update(values)

    def token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.tokens += 1


class Recorder:
    """Finishes records: metrics at once, the audit line on the audit thread."""

    def __init__(self, audit: AuditLog, metrics: ApiMetrics):
        self._audit = audit
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-audit")
        self._closed = False

    def finish(self, record: RequestRecord, status: int, **values: Any) -> None:
        now = time.monotonic()
        latency = now - record.started
        self.metrics.observe_request(record.endpoint, status, latency)
        if record.tokens or record.first_token_at is not None:
            ttft = None if record.first_token_at is None else record.first_token_at - record.started
            decode_s = 0.0 if record.first_token_at is None else now - record.first_token_at
            self.metrics.observe_generation(record.endpoint, ttft, record.tokens, decode_s)
            values.setdefault("ttft_ms", None if ttft is None else round(ttft * 1e3, 3))
        fields = {"request_id": record.id, "key": record.key, "endpoint": record.endpoint, **record.fields,
                  **values, "status": status, "latency_ms": round(latency * 1e3, 3)}
        if self._closed:  # a request that outlived the server's shutdown: write it from here
            self._append(fields)
        else:
            self._pool.submit(self._append, fields)

    def _append(self, fields: dict[str, Any]) -> None:
        try:
            self._audit.append("api.request", **fields)
        except Exception as exc:  # noqa: BLE001 - a full disk must not take the API down; say so loudly
            log.error("audit log: cannot record request %s: %s", fields.get("request_id"), exc)

    def close(self) -> None:
        """Write every pending record (called before the supervisor closes the audit log)."""
        self._closed = True
        self._pool.shutdown(wait=True)
