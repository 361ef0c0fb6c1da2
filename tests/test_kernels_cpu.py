"""The instruction-set guard refuses a CPU below the build's -march with a clear message."""

from __future__ import annotations

import pytest

from kernels.cpu import REQUIRED_FLAGS, require_instruction_set


def fake_cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {' '.join(sorted(flags))}\n")
    return path


def test_cpu_without_avx2_is_refused_with_the_missing_flags_named(tmp_path):
    flags = REQUIRED_FLAGS["x86-64-v3"] - {"avx2", "fma"}
    with pytest.raises(ImportError, match="lacks avx2, fma.*ORBOX_MARCH"):
        require_instruction_set("x86-64-v3", fake_cpuinfo(tmp_path, flags))


def test_cpu_with_the_flags_passes(tmp_path):
    require_instruction_set("x86-64-v3", fake_cpuinfo(tmp_path, REQUIRED_FLAGS["x86-64-v3"] | {"avx512f"}))


def test_unknown_level_or_unreadable_cpuinfo_is_not_checked(tmp_path):
    require_instruction_set("default", fake_cpuinfo(tmp_path, set()))
    require_instruction_set("x86-64-v3", tmp_path / "missing")
