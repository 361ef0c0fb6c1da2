"""Metrics, audit, admission (503 + Retry-After), deadlines, disconnect cancellation, health and status."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
from api_data.fixtures import LLM_MODEL, Server, serve
from appliance_data.fixtures import wait_for
from prometheus_client.parser import text_string_to_metric_families

from appliance.audit import verify_log

SECRET = "Mrs Zhang Wei, MRN 0042-7781, allergic to penicillin"


def _metrics(server: Server) -> dict[str, list]:
    with server.client() as client:
        text = client.get("/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_and_cover_traffic_queue_workers_thermal_and_video(api_server: Server) -> None:
    before = _metrics(api_server)
    with api_server.client() as client:
        for _ in range(3):
            body = {"model": LLM_MODEL, "prompt": "Heart rate", "max_tokens": 8, "stream": True}
            with client.stream("POST", "/v1/completions", json=body) as response:
                assert response.status_code == 200 and list(response.iter_lines())
    after = _metrics(api_server)
    requests = "orbox_http_requests"
    grew = _value(after[requests], requests + "_total", endpoint="/v1/completions", status="200") - \
        _value(before.get(requests, []), requests + "_total", endpoint="/v1/completions", status="200")
    assert grew == 3
    ttft = after["orbox_llm_time_to_first_token_seconds"]
    assert _value(ttft, "orbox_llm_time_to_first_token_seconds_count", endpoint="/v1/completions") >= 3
    assert _value(after["orbox_llm_tokens_per_second"], "orbox_llm_tokens_per_second_count") >= 3
    assert _value(after["orbox_http_request_duration_seconds"], "orbox_http_request_duration_seconds_bucket",
                  endpoint="/v1/completions", le="+Inf") >= 3
    assert {s.labels["stage"] for s in after["orbox_llm_queue_depth"]} == {"admission", "worker"}
    assert {s.labels["worker"] for s in after["orbox_worker_restarts"]} == {"video", "encoder", "llm"}
    temps = {s.labels["sensor"]: s.value for s in after["orbox_temperature_celsius"]}
    assert temps["effective"] == 40.0
    assert [s.labels["band"] for s in after["orbox_thermal_band"]] == ["normal"]
    latency = {s.labels["quantile"]: s.value for s in after["orbox_dehaze_frame_latency_seconds"]}
    assert set(latency) == {"0.5", "0.99", "1"} and 0 < latency["0.5"] <= latency["1"] < 1
    assert _value(after["orbox_dehaze_frames"], "orbox_dehaze_frames_total") > 0
    assert {s.labels["where"] for s in after["orbox_dehaze_dropped_frames"]} == {"capture", "sink"}


def test_every_request_is_audited_without_patient_text(api_server: Server) -> None:
    with api_server.client() as client:
        ok = client.post("/v1/chat/completions", json={"model": LLM_MODEL, "max_tokens": 4,
                                                       "messages": [{"role": "user", "content": SECRET}]})
        denied = httpx.post(api_server.url + "/v1/embeddings", json={"model": "x", "input": SECRET},
                            headers={"Authorization": "Bearer nope"})
        embedded = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": [SECRET]})
    assert (ok.status_code, denied.status_code, embedded.status_code) == (200, 401, 200)
    wanted = {ok.headers["x-request-id"], embedded.headers["x-request-id"]}

    def audited() -> dict[str, dict]:  # records are written by the audit thread
        records = {r["fields"]["request_id"]: r["fields"] for r in api_server.audit_records()}
        return records if wanted <= records.keys() else {}

    records = wait_for(audited, 10, "the requests' audit records")
    chat = records[ok.headers["x-request-id"]]
    assert chat["key"] == "tablet" and chat["endpoint"] == "/v1/chat/completions" and chat["status"] == 200
    assert chat["artifact_sha256"] == ok.headers["x-orbox-artifact-sha256"] and chat["completion_tokens"] == 4
    assert chat["prompt_chars"] > len(SECRET) and len(chat["prompt_sha256"]) == 64 and chat["latency_ms"] > 0
    embed = records[embedded.headers["x-request-id"]]
    assert embed["artifact_sha256"] == embedded.headers["x-orbox-artifact-sha256"] and embed["inputs"] == 1
    assert any(r["status"] == 401 and r["key"] is None and r["endpoint"] == "/v1/embeddings"
               for r in records.values())
    logs = api_server.audit_path.read_text() + "".join(api_server.stderr_lines)
    for fragment in ("Zhang", "0042-7781", "penicillin"):
        assert fragment not in logs
    assert verify_log(api_server.audit_path)[1] == []


def test_health_and_status_page_are_public_but_status_and_models_need_a_key(api_server: Server) -> None:
    # serve() probed /health/ready without a key from the moment it listened: loading, then ready.
    *loading, ready = api_server.ready_probes
    assert loading, "the first probe came after the workers were ready"
    assert all(probe == (503, {"status": "not_ready", "reason": "loading"}, "5") for probe in loading)
    assert ready == (200, {"status": "ready"}, None)
    assert httpx.get(api_server.url + "/health/live").json() == {"status": "live"}
    assert httpx.get(api_server.url + "/health/ready").json() == {"status": "ready"}
    assert httpx.get(api_server.url + "/status").status_code == 200
    assert httpx.get(api_server.url + "/status/summary").json()["ready"] is True
    for path in ("/v1/models", "/metrics", "/api/status"):
        response = httpx.get(api_server.url + path)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error", path
    with api_server.client() as client:
        status = client.get("/api/status").json()
    assert status["ready"] is True and status["readiness"] == {"reason": None, "problems": []}
    assert {w["name"]: w["state"] for w in status["workers"]} == {"video": "ready", "encoder": "ready",
                                                                  "llm": "ready"}
    assert status["profile"] == "dev" and status["thermal"]["band"] is None


def test_thermal_pause_answers_503_with_retry_after_and_recovers(api_server: Server) -> None:
    body = {"model": LLM_MODEL, "prompt": "x", "max_tokens": 2}
    try:
        api_server.set_temperature(92.0)  # the dev profile's very-hot band pauses LLM admission
        with api_server.client() as client:
            paused = wait_for(lambda: (r := client.post("/v1/completions", json=body)).status_code == 503 and r,
                              10, "the governor to pause the LLM")
            assert int(paused.headers["retry-after"]) >= 1
            assert paused.json()["error"]["type"] == "service_unavailable" and "thermal" in paused.json()["error"][
                "message"]
            assert client.get("/health/live").status_code == 200
        not_ready = httpx.get(api_server.url + "/health/ready")  # public: no key
        assert (not_ready.status_code, not_ready.json()) == (503, {"status": "not_ready", "reason": "thermal_paused"})
        assert not_ready.headers["retry-after"] == "30"
    finally:
        api_server.set_temperature(40.0)
    with api_server.client() as client:
        wait_for(lambda: client.post("/v1/completions", json=body).status_code == 200, 20, "admission to resume")
        # leave the shared server as found: a reduced batch left behind would change other tests' answers
        wait_for(lambda: client.get("/api/status").json()["thermal"]["band"] is None, 30,
                 "the thermal band to return to normal")


def test_deadline_and_client_disconnect_cancel_generation(api_server: Server) -> None:
    with api_server.client() as client:
        late = client.post("/v1/completions", json={"model": LLM_MODEL, "prompt": "Long", "max_tokens": 1500},
                           headers={"X-Orbox-Deadline": "0.05"})
        assert late.status_code == 504 and late.json()["error"]["code"] == "deadline_exceeded"
        bad = client.post("/v1/completions", json={"model": LLM_MODEL, "prompt": "x"},
                          headers={"X-Orbox-Deadline": "soon"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Orbox-Deadline"
        body = {"model": LLM_MODEL, "prompt": "Story", "max_tokens": 1900, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as response:
            request_id = response.headers["x-request-id"]
            lines = response.iter_lines()
            next(lines), next(lines)
        # the stream is closed after two chunks: the worker must stop well before 1900 tokens
        record = wait_for(lambda: next((r["fields"] for r in api_server.audit_records()
                                        if r["fields"]["request_id"] == request_id), None), 10, "the audit record")
        assert record["status"] == 499 and record["completion_tokens"] < 1000
        status = client.get("/api/status").json()
        assert status["llm"]["queue_depth"] == 0 and status["api"]["admission_running"] == 0


def test_full_queue_answers_503_and_high_priority_devices_go_first(api_bundle, tmp_path) -> None:
    patient = {"stall_timeout_s": 60.0, "liveness_timeout_s": 60.0}  # the LLM worker is frozen on purpose
    with serve(api_bundle, tmp_path, http={"max_waiting": 2}, supervisor=patient) as server:
        results: dict[str, tuple[int, float]] = {}
        body = {"model": LLM_MODEL, "prompt": "Report", "max_tokens": 32}

        def call(name: str, device: str) -> None:
            with server.client(device) as client:
                response = client.post("/v1/completions", json=body)
            results[name] = (response.status_code, time.monotonic())
            if response.status_code == 503:
                results[name + "-retry"] = (int(response.headers["retry-after"]), 0)

        def api_status() -> dict:
            with server.client() as client:
                return client.get("/api/status").json()

        llm_pid = next(w["pid"] for w in api_status()["workers"] if w["name"] == "llm")
        os.kill(llm_pid, signal.SIGSTOP)  # requests now hold their slots until SIGCONT
        try:
            # the dev profile runs 2 sequences; 2 more wait; a fifth is refused at once
            threads = [threading.Thread(target=call, args=(f"busy{i}", "tablet")) for i in range(2)]
            for thread in threads:
                thread.start()
            wait_for(lambda: api_status()["api"]["admission_running"] == 2, 10, "2 running")
            waiting = [threading.Thread(target=call, args=("normal", "tablet")),
                       threading.Thread(target=call, args=("high", "tower"))]
            for queued, thread in enumerate(waiting, start=1):
                thread.start()  # "normal" queues first, "high" second
                wait_for(lambda n=queued: api_status()["api"]["admission_waiting"] == n, 10, f"{queued} waiting")
            call("refused", "tablet")
        finally:
            os.kill(llm_pid, signal.SIGCONT)
        for thread in threads + waiting:
            thread.join(60)
    assert results["refused"][0] == 503 and results["refused-retry"][0] >= 1
    assert all(results[name][0] == 200 for name in ("busy0", "busy1", "normal", "high"))
    assert results["high"][1] < results["normal"][1]  # queued later, served first
    records = [r["fields"] for r in map(json.loads, (tmp_path / "state" / "audit.jsonl").read_text().splitlines())
               if r["event"] == "api.request" and r["fields"]["endpoint"] == "/v1/completions"]
    assert sorted(r["status"] for r in records) == [200, 200, 200, 200, 503]
