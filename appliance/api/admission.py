"""The bounded, prioritised admission queue in front of the LLM worker.

At most `slots` requests generate at once (the worker's parallel sequences); up to `max_waiting`
more wait, the highest-priority device first and FIFO within a priority. A full queue is refused
at once (503 + Retry-After) instead of piling up, and a waiter whose deadline passes leaves the
queue. Runs entirely on the server's event loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


class QueueFull(Exception):
    def __init__(self, waiting: int):
        super().__init__(f"the LLM admission queue is full ({waiting} requests waiting)")


class QueueTimeout(Exception):
    def __init__(self, waited_s: float):
        super().__init__(f"the request's deadline passed after {waited_s:.1f}s in the admission queue")


@dataclass(order=True)
class _Waiter:
    rank: int
    order: int
    future: asyncio.Future = field(compare=False)


class AdmissionQueue:
    def __init__(self, slots: int, max_waiting: int):
        self.slots = max(1, slots)
        self.max_waiting = max_waiting
        self.running = 0
        self._heap: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._heap)

    @contextlib.asynccontextmanager
    async def slot(self, rank: int, deadline: float) -> AsyncIterator[float]:
        """Hold one generation slot; yields the seconds spent waiting for it."""
        began = time.monotonic()
        if self.running < self.slots and not self.waiting:
            self.running += 1
        else:
            if self.waiting >= self.max_waiting:
                raise QueueFull(self.waiting)
            waiter = _Waiter(rank, next(self._order), asyncio.get_running_loop().create_future())
            heapq.heappush(self._heap, waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter.future), timeout=max(0.0, deadline - time.monotonic()))
            except (TimeoutError, asyncio.CancelledError) as exc:
                if waiter.future.done() and not waiter.future.cancelled():
                    self._release()  # the slot was handed over just as we gave up: pass it on
                else:
                    waiter.future.cancel()
                    self._heap = [w for w in self._heap if not w.future.done()]
                    heapq.heapify(self._heap)
                if isinstance(exc, TimeoutError):
                    raise QueueTimeout(time.monotonic() - began) from None
                raise
        try:
            yield time.monotonic() - began
        finally:
            self._release()

    def _release(self) -> None:
        """Hand the slot to the best live waiter, or free it."""
        while self._heap:
            waiter = heapq.heappop(self._heap)
            if not waiter.future.done():
                waiter.future.set_result(None)
                return
        self.running -= 1
