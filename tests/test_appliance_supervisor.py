"""Supervisor with real worker processes: restarts, stall detection, integrity refusals, feeding rule."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
from appliance_data.fixtures import (
    GGUF_RELPATH,
    McuSim,
    audit_events,
    running_supervisor,
    site_config,
    wait_for,
    worker,
)

from appliance.clients import GenerationError, Unavailable
from appliance.protocol import Done, RequestFailed, Token


def _ready_with_new_pid(supervisor, name: str, old_pid: int):
    def check():
        entry = worker(supervisor.status(), name)
        return entry["state"] == "ready" and entry["pid"] not in (None, old_pid) and entry
    return check


@pytest.mark.parametrize("name", ["llm", "video"])
def test_kill_9_worker_is_restarted_within_3s(tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    config = site_config(tmp_path)
    with running_supervisor(tiny_bundle, config) as supervisor:
        old = worker(supervisor.status(), name)
        assert old["state"] == "ready"
        killed_at = time.monotonic()
        os.kill(old["pid"], signal.SIGKILL)
        entry = wait_for(_ready_with_new_pid(supervisor, name, old["pid"]), 3.0, f"{name} to be restarted")
        assert time.monotonic() - killed_at < 3.0 and entry["restarts"] == 1
        if name == "llm":
            assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 4}).result().usage.completion_tokens
        else:
            frames = entry["last_progress"].get("progress", 0)
            wait_for(lambda: worker(supervisor.status(), "video")["last_progress"].get("progress", 0) > frames + 5,
                     3, "frames from the new video worker")
    events = audit_events(tmp_path / "state" / "audit.jsonl")
    exits = [e for e in events if e["event"] == "worker.exit" and e["fields"]["worker"] == name]
    assert exits[0]["fields"]["exitcode"] == -signal.SIGKILL and exits[0]["fields"]["pid"] == old["pid"]


def test_sigstop_with_work_is_detected_as_stalled_and_replaced(tiny_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path)
    with running_supervisor(tiny_bundle, config) as supervisor:
        old_pid = worker(supervisor.status(), "llm")["pid"]
        stream = supervisor.llm.submit({"prompt": "Tell me a very long story", "max_tokens": 1800})
        events = iter(stream)
        assert isinstance(next(events), Token)
        os.kill(old_pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_for(lambda: worker(supervisor.status(), "llm")["state"] in ("stalled", "restarting", "starting"),
                 3.0, "the stall to be detected")
        assert time.monotonic() - stopped_at <= 3.0
        last = [event for event in events][-1]
        assert isinstance(last, RequestFailed) and last.code == "worker_lost" and "no heartbeat" in last.message
        wait_for(_ready_with_new_pid(supervisor, "llm", old_pid), 10, "a replacement llm worker")
        assert not Path(f"/proc/{old_pid}").exists() or "Z" in Path(f"/proc/{old_pid}/stat").read_text()
        assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 3}).result().finish_reason == "length"
    stalled = [e for e in audit_events(tmp_path / "state" / "audit.jsonl") if e["event"] == "worker.stalled"]
    assert stalled[0]["fields"]["worker"] == "llm" and stalled[0]["fields"]["pid"] == old_pid


def test_generation_streams_tokens_and_can_be_cancelled(tiny_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, supervisor={"workers": ["llm"], "critical_workers": ["llm"]})
    with running_supervisor(tiny_bundle, config) as supervisor:
        first = supervisor.llm.submit({"prompt": "The patient", "max_tokens": 12}).result()
        again = supervisor.llm.submit({"prompt": "The patient", "max_tokens": 12}).result()
        assert first == again and first.usage.completion_tokens == 12  # deterministic by default
        stop = first.text[2:6]
        stopped = supervisor.llm.submit({"prompt": "The patient", "max_tokens": 12, "stop": [stop]}).result()
        assert stopped.finish_reason == "stop" and stopped.text == first.text[:first.text.index(stop)]
        chat = supervisor.llm.submit({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5},
                                     kind="chat").result()
        assert chat.usage.prompt_tokens > 5 and chat.usage.completion_tokens <= 5
        stream = supervisor.llm.submit({"prompt": "Count", "max_tokens": 1500})
        seen = []
        for event in stream:
            seen.append(event)
            if len(seen) == 3:
                assert stream.cancel()
        assert isinstance(seen[-1], Done) and seen[-1].id == stream.id
        assert seen[-1].finish_reason == "cancelled" and seen[-1].usage.completion_tokens < 100
        with pytest.raises(GenerationError) as error:
            supervisor.llm.submit({"prompt": "word " * 3000, "max_tokens": 4}).result()
        assert error.value.code == "context_length_exceeded"
        with pytest.raises(GenerationError, match="unsupported parameter"):
            supervisor.llm.submit({"prompt": "x", "bogus": 1}).result()
        assert supervisor.llm.queue_depth() == 0


def test_worker_output_matches_llama_cpp_python_directly(tiny_bundle: Path, tmp_path: Path) -> None:
    from llama_cpp import Llama

    prompts = ["The patient", "The patient " * 150 + "was", "The patient " * 150 + "is"]  # 300+ tokens:
    # chunked prefill over two n_batch=256 chunks, then a request reusing the cached prefix
    direct = Llama(str(tiny_bundle / GGUF_RELPATH), n_ctx=2048, n_batch=256, n_threads=1, seed=1234, verbose=False)
    expected = [direct.create_completion(p, max_tokens=10, temperature=0.0)["choices"][0]["text"] for p in prompts]
    config = site_config(tmp_path, supervisor={"workers": ["llm"], "critical_workers": ["llm"]})
    with running_supervisor(tiny_bundle, config) as supervisor:
        results = [supervisor.llm.submit({"prompt": p, "max_tokens": 10}).result() for p in prompts]
        wait_for(lambda: worker(supervisor.status(), "llm")["last_progress"]["progress"] >= 30 + 2, 2,
                 "progress counting sampled tokens and prompt chunks")
    assert [r.text for r in results] == expected
    assert results[1].usage.prompt_tokens > 256


@pytest.mark.parametrize(("damage", "expected"), [
    ("flip", "sha256"),
    ("delete", "listed in the manifest but missing"),
])
def test_damaged_gguf_is_refused_and_video_keeps_serving(bundle_copy: Path, tmp_path: Path,
                                                         damage: str, expected: str) -> None:
    gguf = bundle_copy / GGUF_RELPATH
    if damage == "flip":
        data = bytearray(gguf.read_bytes())
        data[len(data) // 2] ^= 0x40
        gguf.write_bytes(bytes(data))
    else:
        gguf.unlink()
    config = site_config(tmp_path)
    with running_supervisor(bundle_copy, config) as supervisor:
        status = supervisor.status()  # right after start-up settled (failed workers are retried later)
        llm = worker(status, "llm")
        assert [w["name"] for w in status["workers"]] == ["video", "llm"]  # this bundle holds no encoder
        assert not status["ready"] and status["readiness"]["reason"] == "worker_failed"
        assert llm["state"] == "failed" and str(gguf) in llm["detail"] and expected in llm["detail"]
        assert "refusing to load" in llm["detail"] if damage == "flip" else True
        with pytest.raises(Unavailable, match="failed"):
            supervisor.llm.submit({"prompt": "Hi"})
        frames = worker(supervisor.status(), "video")["last_progress"].get("progress", 0)
        wait_for(lambda: worker(supervisor.status(), "video")["last_progress"].get("progress", 0) > frames + 5,
                 5, "video frames while the LLM is refused")
    failed = [e for e in audit_events(tmp_path / "state" / "audit.jsonl") if e["event"] == "worker.failed"]
    assert {e["fields"]["worker"] for e in failed} == {"llm"}


def test_missing_capture_device_is_reported_and_the_llm_keeps_serving(tiny_bundle: Path,
                                                                       tmp_path: Path) -> None:
    config = site_config(tmp_path, video={"source": "/dev/video97"})
    with running_supervisor(tiny_bundle, config) as supervisor:
        video = worker(supervisor.status(), "video")
        assert video["state"] == "failed"
        assert video["detail"] == "capture device /dev/video97: not found (is the capture card connected?)"
        assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 2}).result().usage.completion_tokens == 2


def test_missing_video_file_is_reported(tiny_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, video={"source": str(tmp_path / "clip.avi")},
                         supervisor={"workers": ["video"], "critical_workers": ["video"]})
    with running_supervisor(tiny_bundle, config) as supervisor:
        video = worker(supervisor.status(), "video")
        assert video["state"] == "failed" and f"video file {tmp_path / 'clip.avi'}: not found" in video["detail"]


def _epoch(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def test_mcu_feeds_stop_while_a_worker_is_stalled(tiny_bundle: Path, tmp_path: Path) -> None:
    sim = McuSim(tmp_path, timeout_s=30)
    config = site_config(tmp_path, watchdog={"serial_port": str(sim.link), "feed_interval_s": 0.1},
                         supervisor={"backoff_initial_s": 1.5, "workers": ["video"], "critical_workers": ["video"]})
    try:
        with running_supervisor(tiny_bundle, config) as supervisor:
            wait_for(lambda: len(sim.events("feed")) >= 5, 5, "feeds to arrive at the MCU")
            video_pid = worker(supervisor.status(), "video")["pid"]
            os.kill(video_pid, signal.SIGSTOP)
            wait_for(_ready_with_new_pid(supervisor, "video", video_pid), 10, "a replacement video worker")
            wait_for(lambda: supervisor.feeder.feeding, 5, "feeding to resume")
            feeds_after = len(sim.events("feed"))
            wait_for(lambda: len(sim.events("feed")) > feeds_after + 3, 5, "feeds after recovery")
    finally:
        sim.stop()
    events = audit_events(tmp_path / "state" / "audit.jsonl")
    stopped = next(e for e in events if e["event"] == "watchdog.feeding_stopped")
    resumed = [e for e in events if e["event"] == "watchdog.feeding" and e["seq"] > stopped["seq"]][0]
    assert "video stalled" in stopped["fields"]["reason"]
    window = (_epoch(stopped["ts"]), _epoch(resumed["ts"]))
    assert window[1] - window[0] > 1.5  # the stall plus the restart backoff
    feeds_inside = [f for f in sim.events("feed") if window[0] + 0.05 < f["t"] < window[1] - 0.05]
    assert feeds_inside == []
    assert sim.events("set_timeout")[0]["seconds"] == 30  # the profile's watchdog timeout, set once armed
