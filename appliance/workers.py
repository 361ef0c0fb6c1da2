"""The one table of workers: each name, the class its process runs, its cores and the model it serves."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.encoder_worker import EncoderWorker
from appliance.llm_worker import LlmWorker
from appliance.model_bundle import encoder_roles, llm_ggufs
from appliance.protocol import WORKER_NAMES, WorkerName
from appliance.video_worker import VideoWorker
from appliance.worker_process import WorkerRuntime
from hw_profiles import CpuSpec
from primitives.artifacts import MANIFEST_NAME, ModelBundleError, load_manifest


def system_cores_off_video(cpu: CpuSpec) -> list[int]:
    """The system cores the video worker does not own (the LLM's cores when there are none)."""
    return [core for core in cpu.system_cores if core not in cpu.video_cores] or list(cpu.llm_cores)


@dataclass(frozen=True)
class WorkerKind:
    runtime: type[WorkerRuntime]
    cores: Callable[[CpuSpec], list[int]]
    model: str | None = None  # what it serves from the bundle; None: needs no model
    in_bundle: Callable[[dict[str, Any]], bool] = lambda manifest: True


# Video owns its cores; the LLM gets its own; the encoder shares the system cores video leaves free.
WORKERS: dict[WorkerName, WorkerKind] = {
    "video": WorkerKind(VideoWorker, lambda cpu: list(cpu.video_cores)),
    "encoder": WorkerKind(EncoderWorker, system_cores_off_video, "encoder (encoder/<role>/encoder.json)",
                          lambda manifest: bool(encoder_roles(manifest))),
    "llm": WorkerKind(LlmWorker, lambda cpu: list(cpu.llm_cores), "LLM (a gguf artifact with role 'llm')",
                      lambda manifest: bool(llm_ggufs(manifest))),
}


def workers_to_start(configured: list[WorkerName], bundle_dir: str | os.PathLike,
                     ) -> tuple[list[WorkerName], dict[WorkerName, str]]:
    """The configured workers in start order, less those whose model the bundle lacks; and why each was left out.

    A bundle holding only an LLM is a valid vendor choice: an encoder worker for it could only fail
    and keep the box from ever being ready. An unreadable manifest leaves every configured worker in,
    so each model worker fails naming the problem and the box is not ready.
    """
    try:
        manifest: dict[str, Any] | None = load_manifest(bundle_dir)
    except ModelBundleError:
        manifest = None
    start: list[WorkerName] = []
    left_out: dict[WorkerName, str] = {}
    for name in WORKER_NAMES:
        kind = WORKERS[name]
        if name not in configured:
            continue
        if manifest is not None and not kind.in_bundle(manifest):
            left_out[name] = f"{os.path.join(bundle_dir, MANIFEST_NAME)} lists no {kind.model}"
        else:
            start.append(name)
    return start, left_out
