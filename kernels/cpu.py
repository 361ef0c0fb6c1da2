"""Instruction-set guard: a clear ImportError instead of SIGILL on a CPU below the build's -march.

The kernels are compiled for x86-64-v3 (AVX2, FMA, BMI2...) by default because every shipped x86
profile requires AVX2; a box below that needs a wheel built with ORBOX_MARCH=x86-64-v2 (or native).
"""

from __future__ import annotations

from pathlib import Path

# The flags /proc/cpuinfo must show for each x86-64 psABI level we build for.
REQUIRED_FLAGS = {
    "x86-64-v2": {"sse4_2", "ssse3", "popcnt", "cx16"},
    "x86-64-v3": {"sse4_2", "ssse3", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"},
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def require_instruction_set(march: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    required = REQUIRED_FLAGS.get(march)
    if not required:
        return
    flags = cpu_flags(cpuinfo)
    if not flags:  # not Linux/x86 or unreadable: nothing to check against
        return
    missing = sorted(required - flags)
    if missing:
        raise ImportError(
            f"orbox kernels were compiled for {march}, but this CPU lacks {', '.join(missing)}; "
            "reinstall with ORBOX_MARCH=x86-64-v2 (or native) set in the environment"
        )
