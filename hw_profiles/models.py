"""The profile schema: one pydantic model per TOML table, strict, closed, and checked for impossibilities.

Strict types (no "4" for 4) and `extra="forbid"` (no typo'd keys silently ignored) because a profile
decides what a surgical box does under heat and memory pressure; a silently dropped key is a bug in
the field. Cross-field rules raise `KeyedError` so the loader can name the exact offending key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hw_profiles.gguf_types import GGUF_BITS_PER_WEIGHT, KV_BYTES_PER_ELEMENT

Arch = Literal["x86_64", "aarch64"]
AcceleratorKind = Literal["intel-igpu", "intel-npu", "nvidia-cuda", "amd-rocm", "ascend"]
Int8Scheme = Literal["u8s8", "u8u8", "reduce_range", "qdq_s8s8", "none"]
BandAction = Literal["fan_up", "llm_reduce_threads", "llm_pause_admission", "llm_stop", "shutdown"]
PixelFormat = Literal["rgb24", "bgr24", "nv12"]

# x86 flags that give the VPDPBUSD dot product; without one, U8S8 saturates in VPMADDUBSW
# (docs/quantization.md#int8-by-isa).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
STANDARD_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 1500000, 2000000)
# Which accelerator kind makes an execution provider or OpenVINO device meaningful.
PROVIDER_NEEDS_KIND = {
    "CUDAExecutionProvider": "nvidia-cuda",
    "TensorrtExecutionProvider": "nvidia-cuda",
    "CANNExecutionProvider": "ascend",
    "ROCMExecutionProvider": "amd-rocm",
    "MIGraphXExecutionProvider": "amd-rocm",
}
OPENVINO_DEVICE_NEEDS_KIND = {"GPU": "intel-igpu", "NPU": "intel-npu"}
GPU_OFFLOAD_KINDS = ("nvidia-cuda", "amd-rocm", "intel-igpu", "ascend")


class KeyedError(ValueError):
    """A cross-field rule broke; `key` is the dotted path (relative to the model) of the field to blame."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _absolute_path(path: str | None) -> str | None:
    """Device and sysfs paths are opened by services whose working directory is not the profile's."""
    if path is not None and not path.startswith("/"):
        raise ValueError(f"expected an absolute path such as /dev/ttyS1, found {path!r}")
    return path


def _unique(values: list, what: str) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)
    return values


class CpuSpec(_Section):
    """CPU and core pinning.

    Core ids are Linux CPU numbers (taskset, sched_setaffinity) below `physical_cores`; on SMT machines
    those are the first hardware thread of each core. Video never shares a core with the LLM; the
    system's cores may overlap either on a small box.
    """

    arch: Arch
    model: str = Field("", description="marketing name of the CPU the SKU ships with")
    isa_flags: list[str] = Field(description="required /proc/cpuinfo flags (x86) or Features (ARM)")
    physical_cores: int = Field(ge=1, le=1024)
    video_cores: list[int] = Field(min_length=1)
    llm_cores: list[int] = Field(min_length=1)
    system_cores: list[int] = Field(min_length=1)

    @field_validator("isa_flags")
    @classmethod
    def _flags_are_cpuinfo_names(cls, flags: list[str]) -> list[str]:
        for flag in flags:
            if not re.fullmatch(r"[a-z0-9_]+", flag):
                raise ValueError(f"{flag!r} is not a /proc/cpuinfo flag name (lower-case letters, digits, _)")
        return _unique(flags, "flag")

    @field_validator("video_cores", "llm_cores", "system_cores")
    @classmethod
    def _cores_unique(cls, cores: list[int]) -> list[int]:
        if any(core < 0 for core in cores):
            raise ValueError(f"core ids are >= 0, found {cores}")
        return _unique(cores, "core")

    @model_validator(mode="after")
    def _cores_exist_and_video_is_alone(self) -> CpuSpec:
        for field in ("video_cores", "llm_cores", "system_cores"):
            missing = [core for core in getattr(self, field) if core >= self.physical_cores]
            if missing:
                raise KeyedError(field, f"reserves core(s) {missing}, but physical_cores = "
                                        f"{self.physical_cores} (valid ids 0..{self.physical_cores - 1})")
        shared = sorted(set(self.video_cores) & set(self.llm_cores))
        if shared:
            raise KeyedError("llm_cores", f"core(s) {shared} are also video_cores; video must never share "
                                          "a core with the LLM")
        return self


class MemorySpec(_Section):
    """RAM split in MiB. The LLM and encoder budgets are hard caps the planner and supervisor honour."""

    total_mb: int = Field(ge=256)
    os_reserved_mb: int = Field(ge=0)
    video_reserved_mb: int = Field(ge=0)
    llm_budget_mb: int = Field(ge=1)
    encoder_budget_mb: int = Field(ge=0)

    @model_validator(mode="after")
    def _budgets_fit_in_ram(self) -> MemorySpec:
        for field in ("os_reserved_mb", "video_reserved_mb", "llm_budget_mb", "encoder_budget_mb"):
            if getattr(self, field) > self.total_mb:
                raise KeyedError(field, f"{getattr(self, field)} MiB is larger than the RAM "
                                        f"(total_mb = {self.total_mb})")
        committed = self.committed_mb
        if committed > self.total_mb:
            raise KeyedError("llm_budget_mb", f"os_reserved + video_reserved + llm_budget + encoder_budget = "
                                              f"{committed} MiB, more than total_mb = {self.total_mb}")
        return self

    @property
    def committed_mb(self) -> int:
        """RAM the SKU needs for everything it reserves and budgets."""
        return self.os_reserved_mb + self.video_reserved_mb + self.llm_budget_mb + self.encoder_budget_mb


class AcceleratorSpec(_Section):
    """Offload hardware. `kinds = []` means CPU only."""

    kinds: list[AcceleratorKind] = Field(default_factory=list)
    onnx_providers: list[str] = Field(min_length=1, description="onnxruntime execution providers, in order")
    openvino_device: str | None = None
    llm_gpu_layers: int = Field(0, ge=-1, description="llama.cpp n_gpu_layers; -1 offloads every layer")

    @property
    def kind(self) -> str:
        """The primary accelerator, or "none"."""
        return self.kinds[0] if self.kinds else "none"

    @field_validator("kinds")
    @classmethod
    def _kinds_unique(cls, kinds: list[str]) -> list[str]:
        return _unique(kinds, "accelerator kind")

    @field_validator("onnx_providers")
    @classmethod
    def _providers_named_and_cpu_last_resort(cls, providers: list[str]) -> list[str]:
        for provider in providers:
            if not re.fullmatch(r"[A-Za-z0-9]+ExecutionProvider", provider):
                raise ValueError(f"{provider!r} is not an onnxruntime provider name "
                                 "(e.g. CPUExecutionProvider)")
        _unique(providers, "provider")
        if "CPUExecutionProvider" not in providers:
            raise ValueError("must include CPUExecutionProvider as the fallback")
        return providers

    @field_validator("openvino_device")
    @classmethod
    def _openvino_device_name(cls, device: str | None) -> str | None:
        if device is not None and not re.fullmatch(r"(CPU|GPU|NPU)(\.\d+)?", device):
            raise ValueError(f"expected CPU, GPU, NPU (optionally .N), found {device!r}")
        return device

    @model_validator(mode="after")
    def _hardware_is_declared(self) -> AcceleratorSpec:
        for provider in self.onnx_providers:
            needed = PROVIDER_NEEDS_KIND.get(provider)
            if needed and needed not in self.kinds:
                raise KeyedError("onnx_providers", f"{provider} needs accelerator kind {needed!r} in kinds "
                                                   f"(kinds = {self.kinds})")
        if self.openvino_device:
            needed = OPENVINO_DEVICE_NEEDS_KIND.get(self.openvino_device.split(".")[0])
            if needed and needed not in self.kinds:
                raise KeyedError("openvino_device", f"{self.openvino_device} needs accelerator kind "
                                                    f"{needed!r} in kinds (kinds = {self.kinds})")
        if self.llm_gpu_layers != 0 and not set(self.kinds) & set(GPU_OFFLOAD_KINDS):
            gpus = ", ".join(GPU_OFFLOAD_KINDS)
            raise KeyedError("llm_gpu_layers", f"{self.llm_gpu_layers} layers offloaded, but kinds has no "
                                               f"GPU ({gpus}); use 0 on a CPU-only box")
        return self


class LlmSpec(_Section):
    """How llama.cpp runs on this SKU. `context_length` is per sequence; KV is held for `parallel` of them."""

    gguf_types: list[str] = Field(min_length=1, description="allowed weight types, most preferred first")
    floor_type: str
    context_length: int = Field(ge=256, le=1_048_576)
    parallel: int = Field(ge=1, le=64)
    kv_cache_type: str
    flash_attn: bool = Field(True, description="llama.cpp flash attention; quantized KV caches need it")
    threads: int = Field(ge=1)
    batch: int = Field(ge=1)

    @field_validator("gguf_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        for gguf_type in types:
            if gguf_type not in GGUF_BITS_PER_WEIGHT:
                raise ValueError(f"unknown GGUF type {gguf_type!r}; "
                                 f"expected one of {sorted(GGUF_BITS_PER_WEIGHT)}")
        return _unique(types, "type")

    @field_validator("kv_cache_type")
    @classmethod
    def _known_kv_type(cls, kv_type: str) -> str:
        if kv_type not in KV_BYTES_PER_ELEMENT:
            raise ValueError(f"unknown KV cache type {kv_type!r}; "
                             f"expected one of {sorted(KV_BYTES_PER_ELEMENT)}")
        return kv_type

    @model_validator(mode="after")
    def _floor_is_reachable(self) -> LlmSpec:
        if self.floor_type not in GGUF_BITS_PER_WEIGHT:
            raise KeyedError("floor_type", f"unknown GGUF type {self.floor_type!r}; "
                                           f"expected one of {sorted(GGUF_BITS_PER_WEIGHT)}")
        if self.floor_type not in self.gguf_types:
            raise KeyedError("floor_type", f"{self.floor_type!r} is not among gguf_types {self.gguf_types}")
        floor_bits = GGUF_BITS_PER_WEIGHT[self.floor_type]
        below = [t for t in self.gguf_types if GGUF_BITS_PER_WEIGHT[t] < floor_bits]
        if below:
            raise KeyedError("gguf_types", f"{below} are below the floor {self.floor_type!r}")
        if self.kv_cache_type.startswith("q") and not self.flash_attn:
            raise KeyedError("kv_cache_type", f"{self.kv_cache_type!r} is quantized; llama.cpp needs "
                                              "flash_attn = true for a quantized KV cache")
        if self.batch > self.context_length:
            raise KeyedError("batch", f"{self.batch} is larger than context_length = {self.context_length}")
        return self


class EncoderSpec(_Section):
    """INT8 recipe for the ONNX encoders (embedding, reranker), chosen from the ISA.

    See docs/quantization.md#int8-by-isa.
    """

    int8_scheme: Int8Scheme
    per_channel: bool
    openvino: bool


class Band(_Section):
    """A thermal band: entered at `enter_c`, left below `exit_c` (hysteresis), doing `actions` while in it."""

    name: str = Field(min_length=1)
    enter_c: float = Field(ge=20, le=150)
    exit_c: float = Field(ge=0, le=150)
    actions: list[BandAction] = Field(min_length=1)

    @model_validator(mode="after")
    def _hysteresis(self) -> Band:
        if self.exit_c >= self.enter_c:
            raise KeyedError("exit_c", f"{self.exit_c} must be below enter_c = {self.enter_c} (hysteresis)")
        return self


class ThermalSpec(_Section):
    """Sensors and bands. `sources` are globs of thermal-zone directories under `sysfs_root`.

    `required_sensors` are the `sources` that must each match a readable zone when the box starts
    (`orbox serve` refuses otherwise); a box without them cannot shed heat. `[]` (dev) runs
    unmanaged where the machine has no sensor at all.
    """

    sysfs_root: str = "/sys/class/thermal"
    sources: list[str] = Field(min_length=1)
    required_sensors: list[str]
    poll_s: float = Field(1.0, gt=0, le=60)
    bands: list[Band] = Field(min_length=1)
    critical_c: float = Field(ge=40, le=150, description="at or above this the box shuts down")

    _sysfs_root_absolute = field_validator("sysfs_root")(_absolute_path)

    @field_validator("sources")
    @classmethod
    def _sources_are_relative_globs(cls, sources: list[str]) -> list[str]:
        # Path.glob refuses absolute and empty patterns, and ".." would leave sysfs_root: the supervisor
        # would crash on the first poll instead of this file failing validation.
        for pattern in sources:
            if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError(f"expected a glob relative to sysfs_root such as 'thermal_zone*', "
                                 f"found {pattern!r}")
        return _unique(sources, "source")

    @field_validator("required_sensors")
    @classmethod
    def _required_unique(cls, required: list[str]) -> list[str]:
        return _unique(required, "sensor")

    @model_validator(mode="after")
    def _required_are_sources(self) -> ThermalSpec:
        unknown = [pattern for pattern in self.required_sensors if pattern not in self.sources]
        if unknown:
            raise KeyedError("required_sensors", f"{unknown} are not among sources {self.sources}")
        return self

    @model_validator(mode="after")
    def _bands_escalate(self) -> ThermalSpec:
        names = [band.name for band in self.bands]
        for index, band in enumerate(self.bands):
            if names.count(band.name) > 1:
                raise KeyedError(f"bands.{index}.name", f"band name {band.name!r} is used twice")
            if index and band.enter_c <= self.bands[index - 1].enter_c:
                raise KeyedError(f"bands.{index}.enter_c", f"{band.enter_c} must be above the previous "
                                                          f"band's enter_c = {self.bands[index - 1].enter_c}")
            if index and band.exit_c <= self.bands[index - 1].exit_c:
                raise KeyedError(f"bands.{index}.exit_c", f"{band.exit_c} must be above the previous band's "
                                                         f"exit_c = {self.bands[index - 1].exit_c}")
        if self.critical_c <= self.bands[-1].enter_c:
            raise KeyedError("critical_c", f"{self.critical_c} must be above the last band's enter_c = "
                                           f"{self.bands[-1].enter_c}")
        return self

    def zone_dirs(self) -> list[Path]:
        """The thermal-zone directories (each with a `temp` file, in m°C) that `sources` select right now."""
        root = Path(self.sysfs_root)
        found = {path for pattern in self.sources for path in root.glob(pattern) if (path / "temp").is_file()}
        return sorted(found)


class WatchdogSpec(_Section):
    """Liveness hardware: kernel watchdog device, the serial MCU, and systemd's WatchdogSec."""

    device: str | None = None
    timeout_s: int = Field(ge=1, le=3600)
    serial_port: str | None = None
    serial_baud: int = 115200
    systemd: bool

    _paths_absolute = field_validator("device", "serial_port")(_absolute_path)

    @field_validator("serial_baud")
    @classmethod
    def _standard_baud(cls, baud: int) -> int:
        if baud not in STANDARD_BAUDS:
            raise ValueError(f"{baud} is not a standard baud rate; expected one of {list(STANDARD_BAUDS)}")
        return baud


class VideoSpec(_Section):
    """Default video path. `capture_device = None` means frames come from a file or a synthetic source."""

    pixel_format: PixelFormat
    width: int = Field(ge=16, le=8192)
    height: int = Field(ge=16, le=8192)
    fps: float = Field(gt=0, le=240)
    capture_device: str | None = None

    _capture_device_absolute = field_validator("capture_device")(_absolute_path)

    @model_validator(mode="after")
    def _nv12_needs_even_size(self) -> VideoSpec:
        if self.pixel_format == "nv12" and (self.width % 2 or self.height % 2):
            raise KeyedError("width", f"nv12 needs even width and height, found {self.width}x{self.height}")
        return self


class Profile(_Section):
    """One box SKU. Every package reads its thread counts, budgets, quant types and limits from here."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: str = Field(min_length=1)
    description: str = Field(min_length=1)
    cpu: CpuSpec
    memory: MemorySpec
    accelerators: AcceleratorSpec
    llm: LlmSpec
    encoder: EncoderSpec
    thermal: ThermalSpec
    watchdog: WatchdogSpec
    video: VideoSpec

    @model_validator(mode="after")
    def _sections_agree(self) -> Profile:
        if self.llm.threads > len(self.cpu.llm_cores):
            raise KeyedError("llm.threads", f"{self.llm.threads} threads but only {len(self.cpu.llm_cores)} "
                                            f"llm_cores {self.cpu.llm_cores}")
        vnni = [flag for flag in VNNI_FLAGS if flag in self.cpu.isa_flags]
        if self.encoder.int8_scheme == "u8s8" and self.cpu.arch == "x86_64" and not vnni:
            raise KeyedError("encoder.int8_scheme", f"u8s8 on x86 needs one of {list(VNNI_FLAGS)} in "
                                                    "cpu.isa_flags (VPMADDUBSW saturates without VNNI); "
                                                    "use u8u8 or reduce_range")
        if self.encoder.openvino and self.accelerators.openvino_device is None:
            raise KeyedError("encoder.openvino", "is true but accelerators.openvino_device is not set")
        return self

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of every field, so a manifest or an answer names the exact profile."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
