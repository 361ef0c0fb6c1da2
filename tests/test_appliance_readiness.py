"""Which workers a bundle calls for, and the one readiness verdict (pure: no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.protocol import WorkerState, WorkerStatus
from appliance.readiness import NotReady, assess
from appliance.workers import workers_to_start
from primitives.artifacts import SCHEMA

LLM = {"llm/m-q8_0.gguf": {"kind": "gguf", "role": "llm", "quant_type": "q8_0"}}
ENCODER = {"encoder/embedding/encoder.json": {"kind": "json"}}


def _bundle(tmp_path: Path, artifacts: dict) -> Path:
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": SCHEMA, "profile": "dev", "artifacts": artifacts,
                                                        "sections": {}}))
    return tmp_path


@pytest.mark.parametrize(("artifacts", "started"), [
    (LLM, ["video", "llm"]),
    (ENCODER, ["video", "encoder"]),
    ({**LLM, **ENCODER}, ["video", "encoder", "llm"]),
])
def test_only_the_workers_the_bundle_calls_for_start(tmp_path: Path, artifacts: dict, started: list[str]) -> None:
    bundle = _bundle(tmp_path, artifacts)
    order, left_out = workers_to_start(["video", "encoder", "llm"], bundle)
    assert order == started
    assert set(left_out) == {"video", "encoder", "llm"} - set(started)
    assert all(why.startswith(f"{bundle}/manifest.json lists no ") for why in left_out.values())
    assert workers_to_start(["llm"], bundle)[0] == [name for name in started if name == "llm"]  # the config too


def test_an_unreadable_manifest_starts_every_configured_worker_so_each_fails_visibly(tmp_path: Path) -> None:
    assert workers_to_start(["video", "encoder", "llm"], tmp_path) == (["video", "encoder", "llm"], {})


def _worker(name: str, state: WorkerState, detail: str | None = None) -> WorkerStatus:
    return WorkerStatus(name=name, pid=None, state=state, restarts=0, detail=detail, cores=[], info={},
                        last_progress={}, last_heartbeat_age_s=None, last_progress_age_s=None)


def test_readiness_gives_one_reason_class_most_severe_first() -> None:
    ready, starting, failed = (_worker("llm", WorkerState.READY), _worker("llm", WorkerState.STARTING),
                               _worker("video", WorkerState.FAILED, "capture device /dev/video0: not found"))
    assert assess([ready], started=True, llm_paused=False, shutting_down=False).ready
    assert assess([], started=False, llm_paused=False, shutting_down=False).reason == NotReady.LOADING
    assert assess([starting], started=True, llm_paused=False, shutting_down=False).reason == NotReady.LOADING
    stopped = _worker("llm", WorkerState.STOPPED)
    assert assess([stopped], started=False, llm_paused=False, shutting_down=False).reason == NotReady.LOADING
    assert assess([stopped], started=True, llm_paused=False, shutting_down=False).reason == NotReady.THERMAL_PAUSED
    assert assess([ready], started=True, llm_paused=True, shutting_down=False).reason == NotReady.THERMAL_PAUSED
    restarting = _worker("llm", WorkerState.RESTARTING)
    assert assess([restarting], started=True, llm_paused=False, shutting_down=False).retry_after_s == 5
    verdict = assess([failed, ready], started=True, llm_paused=True, shutting_down=False)
    assert (verdict.reason, verdict.retry_after_s) == (NotReady.WORKER_FAILED, 30)
    assert verdict.problems == ["video worker is failed (capture device /dev/video0: not found)",
                                "LLM admission is paused by the thermal governor"]
    assert assess([failed], started=True, llm_paused=False, shutting_down=True).reason == NotReady.SHUTTING_DOWN
