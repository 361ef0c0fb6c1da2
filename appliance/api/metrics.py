"""Prometheus metrics: HTTP traffic measured here, box state collected from the supervisor at scrape time.

Traffic (request counts, latency, time to first token, tokens/s) is recorded by the API as requests
finish. Queue depth, worker restarts, temperatures, the thermal band and dehaze latency/drops are
read from `supervisor.status()` on every scrape, so they are never stale and cost nothing between
scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class BoxCollector(Collector):
    """Gauges and counters derived from the supervisor's status and the admission queue."""

    def __init__(self, status: Callable[[], dict[str, Any]], admission_waiting: Callable[[], int]):
        self._status = status
        self._admission_waiting = admission_waiting

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        queue = GaugeMetricFamily("orbox_llm_queue_depth", "LLM requests waiting or generating, by stage",
                                  labels=["stage"])
        queue.add_metric(["admission"], self._admission_waiting())
        queue.add_metric(["worker"], status["llm"]["queue_depth"])
        yield queue
        restarts = CounterMetricFamily("orbox_worker_restarts", "Worker restarts since the box started",
                                       labels=["worker"])
        ready = GaugeMetricFamily("orbox_worker_ready", "1 when the worker is ready to serve", labels=["worker"])
        for entry in status["workers"]:
            restarts.add_metric([entry["name"]], entry["restarts"])
            ready.add_metric([entry["name"]], 1.0 if entry["state"] == "ready" else 0.0)
        yield restarts
        yield ready
        yield from self._thermal(status["thermal"])
        yield from self._video(status["video"])

    @staticmethod
    def _thermal(thermal: dict[str, Any]) -> Iterator[Metric]:
        temps = GaugeMetricFamily("orbox_temperature_celsius", "Temperature by sensor", labels=["sensor"])
        for sensor, celsius in sorted(thermal.get("sensors", {}).items()):
            if celsius is not None:
                temps.add_metric([sensor], float(celsius))
        if thermal.get("temperature_c") is not None:
            temps.add_metric(["effective"], float(thermal["temperature_c"]))
        yield temps
        band = GaugeMetricFamily("orbox_thermal_band", "1 for the current thermal band", labels=["band"])
        band.add_metric([thermal.get("band") or "normal"], 1.0)
        yield band
        paused = GaugeMetricFamily("orbox_llm_admission_paused", "1 while the thermal governor pauses the LLM")
        paused.add_metric([], 1.0 if thermal.get("admission_paused") else 0.0)
        yield paused

    @staticmethod
    def _video(video: dict[str, Any]) -> Iterator[Metric]:
        latency = GaugeMetricFamily("orbox_dehaze_frame_latency_seconds",
                                    "Dehaze capture-to-output latency over the recent frame window",
                                    labels=["quantile"])
        summary = video.get("latency") or {}
        for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms"), ("1", "max_ms")):
            if key in summary:
                latency.add_metric([quantile], summary[key] / 1e3)
        yield latency
        frames = CounterMetricFamily("orbox_dehaze_frames", "Frames dehazed by the current video worker")
        frames.add_metric([], video.get("frames") or 0)
        yield frames
        dropped = CounterMetricFamily("orbox_dehaze_dropped_frames", "Frames dropped (late) by the video worker",
                                      labels=["where"])
        dropped.add_metric(["capture"], video.get("dropped") or 0)
        dropped.add_metric(["sink"], video.get("sink_dropped") or 0)
        yield dropped


class ApiMetrics:
    """One registry per app, so two servers in one process (tests) never share counters."""

    def __init__(self, status: Callable[[], dict[str, Any]], admission_waiting: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.requests = Counter("orbox_http_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("orbox_http_request_duration_seconds", "Request latency (to the last byte)",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("orbox_llm_time_to_first_token_seconds", "Time from request to first token",
                              ["endpoint"], buckets=TTFT_BUCKETS, registry=self.registry)
        self.tokens_per_s = Histogram("orbox_llm_tokens_per_second", "Decode speed per request (after TTFT)",
                                      ["endpoint"], buckets=TPS_BUCKETS, registry=self.registry)
        self.tokens = Counter("orbox_llm_generated_tokens", "Tokens generated", ["endpoint"], registry=self.registry)
        self.registry.register(BoxCollector(status, admission_waiting))

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_generation(self, endpoint: str, ttft_s: float | None, tokens: int, decode_s: float) -> None:
        self.tokens.labels(endpoint).inc(tokens)
        if ttft_s is not None:
            self.ttft.labels(endpoint).observe(ttft_s)
        if tokens > 1 and decode_s > 0:
            self.tokens_per_s.labels(endpoint).observe((tokens - 1) / decode_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
