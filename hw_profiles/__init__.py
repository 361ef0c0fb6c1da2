"""hw_profiles: declarative box SKUs, detection of the machine we run on, and the memory-fit planner.

Every other package reads thread counts, memory budgets, quant types, INT8 scheme, thermal bands,
watchdog and serial ports from a profile, through this API only. It imports nothing else of orbox, and
its optional runtime probes (onnxruntime, openvino, llama_cpp, psutil, pyserial) degrade to "unknown".
"""

from hw_profiles.detect import MachineInfo, detect_machine
from hw_profiles.errors import PlanError, Problem, ProfileError
from hw_profiles.loader import list_profiles, load_profile
from hw_profiles.models import (
    AcceleratorSpec,
    Band,
    CpuSpec,
    EncoderSpec,
    LlmSpec,
    MemorySpec,
    Profile,
    ThermalSpec,
    VideoSpec,
    WatchdogSpec,
)
from hw_profiles.planner import LlmPlan, PlanRow, load_model_config, plan_llm
from hw_profiles.ranking import ProfileFit, rank_profiles

__all__ = [
    "AcceleratorSpec", "Band", "CpuSpec", "EncoderSpec", "LlmPlan", "LlmSpec", "MachineInfo", "MemorySpec",
    "PlanError", "PlanRow", "Problem", "Profile", "ProfileError", "ProfileFit", "ThermalSpec", "VideoSpec",
    "WatchdogSpec", "detect_machine", "list_profiles", "load_model_config", "load_profile", "plan_llm",
    "rank_profiles",
]
