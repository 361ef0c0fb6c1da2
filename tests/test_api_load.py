"""Load: 64 concurrent clients for 30 s against a real server.

Memory stays bounded, no audit record is lost (one per request the clients made, chain intact),
and /health/live stays fast while the LLM queue overflows into 503s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter

import httpx
import psutil
from api_data.fixtures import EMBEDDING_MODEL, LLM_MODEL, serve

from appliance.audit import verify_log

CLIENTS = 64
DURATION_S = 30.0
LIVE_P99_BUDGET_MS = 1000.0


def _tree_rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


async def _client(index: int, url: str, key: str, stop_at: float, statuses: Counter) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        for turn in itertools.count():
            if time.monotonic() >= stop_at:
                return
            kind = (index + turn) % 3
            if kind == 0:
                response = await client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL,
                                                                     "input": [f"note {index}-{turn}"]})
            elif kind == 1:
                body = {"model": LLM_MODEL, "prompt": f"Case {index}", "max_tokens": 16, "stream": True}
                async with client.stream("POST", "/v1/completions", json=body) as response:
                    lines = [line async for line in response.aiter_lines() if line]
                    if response.status_code == 200:
                        assert lines[-1] == "data: [DONE]"
            else:
                response = await client.post("/v1/chat/completions", json={
                    "model": LLM_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": f"Bed {index}"}]})
            statuses["api", response.status_code] += 1
            if response.status_code == 503:
                assert int(response.headers["retry-after"]) >= 1
                await asyncio.sleep(0.2)


async def _load(url: str, key: str, statuses: Counter, duration_s: float) -> None:
    stop_at = time.monotonic() + duration_s
    await asyncio.gather(*(_client(i, url, key, stop_at, statuses) for i in range(CLIENTS)))


# A separate process probes /health/live as a monitoring device would, so its timings measure the
# server, not the load generator's own busy event loop.
_PROBE = """
import json, sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
timings, codes = [], []
with httpx.Client(timeout=30) as client:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        began = time.monotonic()
        codes.append(client.get(url).status_code)
        timings.append((time.monotonic() - began) * 1e3)
        time.sleep(0.02)
print(json.dumps({"ms": timings, "codes": codes}))
"""


def _settled_audit_count(server, expected: int, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while len(server.audit_records()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(server.audit_records())


def test_64_clients_for_30s(api_bundle, tmp_path) -> None:
    with serve(api_bundle, tmp_path, http={"max_waiting": 16}) as server:
        pid = server.process.pid
        warmup: Counter = Counter()
        audited_initially = len(server.audit_records())
        asyncio.run(_load(server.url, server.keys["tablet"], warmup, 3.0))  # warm-up: allocator, caches
        # Audit records are written by a background thread: let the warm-up's land before counting.
        audited_before = _settled_audit_count(server, expected=audited_initially + sum(warmup.values()))
        rss_before = _tree_rss_mb(pid)
        statuses: Counter = Counter()
        probe = subprocess.Popen([sys.executable, "-c", _PROBE, server.url + "/health/live", str(DURATION_S)],
                                 stdout=subprocess.PIPE, text=True)
        asyncio.run(_load(server.url, server.keys["tablet"], statuses, DURATION_S))
        live = json.loads(probe.communicate(timeout=60)[0])
        rss_after = _tree_rss_mb(pid)
        assert server.stop() == 0  # every pending audit record is written before the log closes
    api_calls = sum(n for (kind, _), n in statuses.items() if kind == "api")
    codes = Counter({code: n for (kind, code), n in statuses.items() if kind == "api"})
    assert set(codes) <= {200, 503}, codes
    assert codes[200] > 100 and api_calls > 300, codes
    records = server.audit_records()[audited_before:]
    assert len(records) == api_calls  # one audit record per request, none lost
    assert Counter(r["fields"]["status"] for r in records) == codes
    assert verify_log(server.audit_path)[1] == []
    live_ms = sorted(live["ms"])
    p99 = live_ms[int(len(live_ms) * 0.99)]
    assert set(live["codes"]) == {200} and len(live_ms) > 100
    # The budget docs/serving.md promises monitors (#health-signals): a liveness answer that queued
    # behind the LLM would take seconds; CPU contention on a 2-core CI box costs ~300 ms at p99.
    p50 = live_ms[len(live_ms) // 2]
    assert p99 < LIVE_P99_BUDGET_MS, f"/health/live p50 {p50:.1f} ms, p99 {p99:.1f} ms under load"
    assert rss_after - rss_before < 150, f"RSS grew {rss_before:.0f} -> {rss_after:.0f} MiB"
