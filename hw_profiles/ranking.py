"""Which shipped profiles this machine can run, the best one first, and why each other one is rejected.

A profile fits when the machine has everything it requires. Among those that fit, the most specific
SKU wins: the one that uses the most of the machine (accelerators, then cores, then memory, then ISA
extensions), so a Xeon server picks "server-avx512-vnni" over "dev" although both fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hw_profiles.detect import MachineInfo
from hw_profiles.loader import list_profiles, load_profile
from hw_profiles.models import Profile


@dataclass
class ProfileFit:
    """One profile judged against the machine: fits or not, the reasons it does not, and warnings."""

    name: str
    fits: bool
    score: tuple[int, ...]
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge(profile: Profile, machine: MachineInfo) -> ProfileFit:
    """Check one profile's requirements against the machine."""
    reasons: list[str] = []
    notes: list[str] = []
    cpu, accel = profile.cpu, profile.accelerators
    if cpu.arch != machine.arch:
        reasons.append(f"needs {cpu.arch}; this CPU is {machine.arch}")
    else:  # another architecture's flags would only repeat the same reason
        missing = [flag for flag in cpu.isa_flags if flag not in machine.isa_flags]
        reasons.extend(f"needs {flag}; this CPU lacks it" for flag in missing)
    if cpu.physical_cores > machine.physical_cores:
        reasons.append(f"needs {cpu.physical_cores} physical cores; "
                       f"this machine has {machine.physical_cores}")
    needed_mb = profile.memory.committed_mb
    if needed_mb > machine.memory_total_mb:
        reasons.append(f"needs {needed_mb} MiB of RAM for its reservations and budgets; this machine has "
                       f"{machine.memory_total_mb} MiB")
    for kind in accel.kinds:
        if kind not in machine.accelerator_kinds:
            reasons.append(f"needs accelerator {kind}; none found")
    _check_runtimes(profile, machine, reasons, notes)
    if profile.watchdog.device and profile.watchdog.device not in machine.watchdog_devices:
        reasons.append(f"needs watchdog {profile.watchdog.device}; not present")
    if profile.watchdog.serial_port and machine.serial_ports is not None \
            and profile.watchdog.serial_port not in machine.serial_ports:
        notes.append(f"serial MCU port {profile.watchdog.serial_port} not present (unplugged?)")
    if not profile.thermal.zone_dirs():
        notes.append(f"thermal sources {profile.thermal.sources} match no zone under "
                     f"{profile.thermal.sysfs_root}: no temperature to act on")
    score = (len(accel.kinds), cpu.physical_cores, needed_mb, len(cpu.isa_flags))
    return ProfileFit(profile.name, not reasons, score, reasons, notes)


def _check_runtimes(profile: Profile, machine: MachineInfo, reasons: list[str], notes: list[str]) -> None:
    accel = profile.accelerators
    if machine.onnx_providers is None:
        notes.append("onnxruntime providers not checked (onnxruntime missing)")
    else:
        for provider in accel.onnx_providers:
            if provider not in machine.onnx_providers:
                reasons.append(f"needs onnxruntime {provider}; this onnxruntime offers "
                               f"{', '.join(machine.onnx_providers)}")
    if accel.openvino_device and profile.encoder.openvino:
        if machine.openvino_devices is None:
            notes.append("OpenVINO devices not checked (openvino missing)")
        elif accel.openvino_device not in machine.openvino_devices:
            reasons.append(f"needs OpenVINO device {accel.openvino_device}; available: "
                           f"{', '.join(machine.openvino_devices) or 'none'}")
    if accel.llm_gpu_layers != 0:
        if machine.llm_gpu_offload is None:
            notes.append("llama.cpp GPU offload not checked (llama_cpp missing)")
        elif not machine.llm_gpu_offload:
            reasons.append(f"needs llama.cpp GPU offload ({accel.llm_gpu_layers} layers); this llama.cpp "
                           "build is CPU-only")


def rank_profiles(machine: MachineInfo, profiles: list[Profile] | None = None) -> list[ProfileFit]:
    """Judge every profile (default: all shipped), fitting ones first, best first; ties by name."""
    if profiles is None:
        profiles = [load_profile(name) for name in list_profiles()]
    fits = [judge(profile, machine) for profile in profiles]
    return sorted(fits, key=lambda fit: (not fit.fits, tuple(-part for part in fit.score), fit.name))

