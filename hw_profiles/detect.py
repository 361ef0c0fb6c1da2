"""Reading the machine: CPU flags and cores, RAM, accelerators, thermal zones, watchdogs, serial ports.

hw_profiles also runs on the vendor's build host, where onnxruntime, openvino, llama_cpp, psutil or
pyserial may be absent: each probe then reports None ("unknown") and says why in `notes`, instead of
failing. Roots are parameters so tests can point detection at a fake /proc, /sys and /dev tree.
"""

from __future__ import annotations

import importlib
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INTEL_PCI_VENDOR = "0x8086"
# Device nodes that prove an accelerator driver is loaded (relative to the /dev root).
ACCELERATOR_NODES = {
    "nvidia-cuda": ("nvidia0", "nvhost-ctrl-gpu", "nvgpu/igpu0/ctrl"),
    "intel-npu": ("accel/accel0",),
    "amd-rocm": ("kfd",),
    "ascend": ("davinci0",),
}


@dataclass
class ThermalZone:
    name: str
    type: str
    temp_c: float | None


@dataclass
class MachineInfo:
    """What this machine offers. None means "could not tell" (the probe's module is missing); see notes."""

    arch: str
    cpu_model: str
    isa_flags: list[str]
    physical_cores: int
    logical_cores: int
    memory_total_mb: int
    accelerator_kinds: list[str]
    onnx_providers: list[str] | None
    openvino_devices: list[str] | None
    llm_gpu_offload: bool | None
    thermal_zones: list[ThermalZone]
    watchdog_devices: list[str]
    serial_ports: list[str] | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _optional_module(name: str, notes: list[str]) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        notes.append(f"{name} is not installed: its part of the detection is unknown")
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


@dataclass
class CpuInfo:
    model: str
    flags: list[str]
    physical_cores: int
    logical_cores: int
    arch: str | None


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model, flags and core counts from /proc/cpuinfo, on x86 ("flags") and ARM ("Features")."""
    model, flags, cores, logical, arch = "", set(), set(), 0, None
    physical_id = core_id = None
    for line in text.splitlines() + [""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Hardware", "Model") and not model:
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "CPU architecture" and value == "8":
            arch = "aarch64"
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif not key:  # a blank line ends one processor's block
            if core_id is not None:
                cores.add((physical_id, core_id))
            physical_id = core_id = None
    if arch is None and "lm" in flags:  # long mode: a 64-bit x86
        arch = "x86_64"
    return CpuInfo(model, sorted(flags), len(cores) or logical, logical, arch)


def _memory_total_mb(proc_root: Path, notes: list[str]) -> int:
    psutil = _optional_module("psutil", notes)
    if psutil is not None and proc_root == Path("/proc"):  # psutil only ever reads the real /proc
        return psutil.virtual_memory().total // (1024 * 1024)
    for line in (_read_text(proc_root / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    notes.append(f"cannot read {proc_root / 'meminfo'}: RAM unknown, reported as 0")
    return 0


def _onnx_providers(notes: list[str]) -> list[str] | None:
    onnxruntime = _optional_module("onnxruntime", notes)
    return list(onnxruntime.get_available_providers()) if onnxruntime is not None else None


def _openvino_devices(notes: list[str]) -> list[str] | None:
    openvino = _optional_module("openvino", notes)
    if openvino is None:
        return None
    try:
        return list(openvino.Core().available_devices)
    except RuntimeError as exc:  # a broken plugin must not hide the rest of the report
        notes.append(f"openvino could not list devices: {exc}")
        return None


def _llm_gpu_offload(notes: list[str]) -> bool | None:
    llama_cpp = _optional_module("llama_cpp", notes)
    return bool(llama_cpp.llama_supports_gpu_offload()) if llama_cpp is not None else None


def _serial_ports(notes: list[str]) -> list[str] | None:
    list_ports = _optional_module("serial.tools.list_ports", notes)
    return sorted(port.device for port in list_ports.comports()) if list_ports is not None else None


def read_thermal_zones(thermal_root: Path) -> list[ThermalZone]:
    """Every thermal_zone* under `thermal_root` with its type and temperature (sysfs holds m°C)."""
    zones = []
    for zone in sorted(thermal_root.glob("thermal_zone*")):
        raw = (_read_text(zone / "temp") or "").strip()
        temp = int(raw) / 1000 if raw.lstrip("-").isdigit() else None
        zones.append(ThermalZone(zone.name, (_read_text(zone / "type") or "").strip(), temp))
    return zones


def _accelerator_kinds(dev_root: Path, sys_root: Path, providers: list[str] | None,
                       openvino_devices: list[str] | None) -> list[str]:
    kinds = {kind for kind, nodes in ACCELERATOR_NODES.items() if any((dev_root / n).exists() for n in nodes)}
    if providers and "CUDAExecutionProvider" in providers:
        kinds.add("nvidia-cuda")
    devices = {device.split(".")[0] for device in openvino_devices or []}
    if "NPU" in devices:
        kinds.add("intel-npu")
    if "GPU" in devices:
        kinds.add("intel-igpu")
    for vendor in sys_root.glob("class/drm/card*/device/vendor"):
        if (_read_text(vendor) or "").strip() == INTEL_PCI_VENDOR:
            kinds.add("intel-igpu")
    return sorted(kinds)


def detect_machine(*, proc_root: str | os.PathLike = "/proc", sys_root: str | os.PathLike = "/sys",
                   dev_root: str | os.PathLike = "/dev", probe_runtimes: bool = True) -> MachineInfo:
    """Describe this machine. `probe_runtimes=False` skips onnxruntime, OpenVINO and llama.cpp (fast)."""
    proc_root, sys_root, dev_root = Path(proc_root), Path(sys_root), Path(dev_root)
    notes: list[str] = []
    cpuinfo = _read_text(proc_root / "cpuinfo")
    if cpuinfo is None:
        notes.append(f"cannot read {proc_root / 'cpuinfo'}: CPU flags unknown")
    cpu = parse_cpuinfo(cpuinfo or "")
    logical = cpu.logical_cores or os.cpu_count() or 1
    real_machine = proc_root == Path("/proc")
    providers = _onnx_providers(notes) if probe_runtimes else None
    openvino_devices = _openvino_devices(notes) if probe_runtimes else None
    return MachineInfo(
        arch=platform.machine() if real_machine or cpu.arch is None else cpu.arch,
        cpu_model=cpu.model or "unknown",
        isa_flags=cpu.flags,
        physical_cores=cpu.physical_cores or logical,
        logical_cores=logical,
        memory_total_mb=_memory_total_mb(proc_root, notes),
        accelerator_kinds=_accelerator_kinds(dev_root, sys_root, providers, openvino_devices),
        onnx_providers=providers,
        openvino_devices=openvino_devices,
        llm_gpu_offload=_llm_gpu_offload(notes) if probe_runtimes else None,
        thermal_zones=read_thermal_zones(sys_root / "class" / "thermal"),
        # Named as on the box ("/dev/watchdog0"), whatever root was probed, to compare with profiles.
        watchdog_devices=sorted(f"/dev/{path.name}" for path in dev_root.glob("watchdog*")),
        serial_ports=_serial_ports(notes),
        notes=notes,
    )

