"""The one table of workers: each name, the class its process runs and the cores it is pinned to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.encoder_worker import EncoderWorker
from appliance.llm_worker import LlmWorker
from appliance.protocol import WorkerName
from appliance.video_worker import VideoWorker
from appliance.worker_process import WorkerRuntime
from hw_profiles import CpuSpec


def system_cores_off_video(cpu: CpuSpec) -> list[int]:
    """The system cores the video worker does not own (the LLM's cores when there are none)."""
    return [core for core in cpu.system_cores if core not in cpu.video_cores] or list(cpu.llm_cores)


@dataclass(frozen=True)
class WorkerKind:
    runtime: type[WorkerRuntime]
    cores: Callable[[CpuSpec], list[int]]


# Video owns its cores; the LLM gets its own; the encoder shares the system cores video leaves free.
WORKERS: dict[WorkerName, WorkerKind] = {
    "video": WorkerKind(VideoWorker, lambda cpu: list(cpu.video_cores)),
    "encoder": WorkerKind(EncoderWorker, system_cores_off_video),
    "llm": WorkerKind(LlmWorker, lambda cpu: list(cpu.llm_cores)),
}
