"""The knowledge bases the box serves (issue 15): verified and opened at start, searched in the API process.

Each KB directory is served as `kb:<directory name>`. It is opened like a model: every file's sha256
checked against its manifest (and the manifest's signature when the site config names `kb.pubkey`),
its encoder refused on a box of another profile. A KB that fails is refused, recorded in the audit
log and in status, and the others keep serving.

Where search runs: in the API's own process (the supervisor's, pinned to the system cores off the
video cores), on a thread per request, under one lock per KB. A query is one batch-1 encoder call
and one SQLite query (p50 about 150 ms at 10^5 chunks, docs/knowledge_base.md), so a worker process
of its own would add a pipe hop and a second copy of the vectors for nothing; the lock serialises
the KB's SQLite connection and encoder session, which are not made for concurrent use, and the
thread keeps the event loop free. The video worker has its own process and cores and never waits.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from knowledge_base import KnowledgeBase, KnowledgeBaseError

MODEL_PREFIX = "kb:"
KB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
T = TypeVar("T")


@dataclass
class ServedKb:
    name: str
    path: Path
    kb: KnowledgeBase
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def model_id(self) -> str:
        return MODEL_PREFIX + self.name

    async def call(self, work: Callable[[KnowledgeBase], T]) -> T:
        """Run `work(kb)` on a thread, one call at a time per KB."""
        def locked() -> T:
            with self.lock:
                return work(self.kb)

        return await asyncio.to_thread(locked)


class KbRegistry:
    """The opened KBs by name, and the refused ones with the reason."""

    def __init__(self, profile: Any, audit: Callable[..., None]) -> None:
        self._profile = profile
        self._audit = audit
        self.served: dict[str, ServedKb] = {}
        self.refused: dict[str, tuple[Path, str]] = {}

    def open_all(self, paths: Iterable[Path], pubkey: Path | None) -> None:
        for path in paths:
            self.open(Path(path), pubkey)

    def open(self, path: Path, pubkey: Path | None) -> None:
        name = path.name
        if not KB_NAME.fullmatch(name):
            self._refuse(name, path, f"the directory name must match {KB_NAME.pattern} (it becomes the model id "
                                     f"kb:<name>), found {name!r}")
            return
        if name in self.served:
            self._refuse(name, path, f"another KB is already served as kb:{name} (from {self.served[name].path})")
            return
        try:
            kb = KnowledgeBase.open(path, self._profile, pubkey=pubkey)
        except KnowledgeBaseError as exc:
            self._refuse(name, path, str(exc))
            return
        self.served[name] = ServedKb(name, path, kb)
        self._audit("kb.loaded", name=name, path=str(path), sha256=kb.sha256, chunks=kb.store.chunk_count(),
                    signature_checked=pubkey is not None)

    def _refuse(self, name: str, path: Path, reason: str) -> None:
        self.refused[name] = (path, reason)
        self._audit("kb.refused", name=name, path=str(path), reason=reason)

    def get(self, name: str) -> ServedKb | None:
        return self.served.get(name)

    def served_ids(self) -> list[str]:
        return [served.model_id for served in self.served.values()]

    def status(self) -> list[dict[str, Any]]:
        """One entry per KB, served or refused, in name order (status.json and /api/status)."""
        entries = [{"name": name, "path": str(kb.path), "state": "ready", "sha256": kb.kb.sha256, "detail": None}
                   for name, kb in self.served.items()]
        entries += [{"name": name, "path": str(path), "state": "refused", "sha256": None, "detail": reason}
                    for name, (path, reason) in self.refused.items()]
        return sorted(entries, key=lambda entry: entry["name"])

    def close(self) -> None:
        for served in self.served.values():
            with served.lock:
                served.kb.close()
