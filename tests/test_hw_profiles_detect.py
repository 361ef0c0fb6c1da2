"""Detection of this machine (text and JSON), of fake /proc, /sys and /dev trees, and ranking by fit."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import orbox_cli

from hw_profiles import MachineInfo, detect_machine, list_profiles, load_profile, rank_profiles
from hw_profiles.ranking import judge
from orbox.cli import cli

OPTIONAL_MODULES = ("onnxruntime", "openvino", "llama_cpp", "psutil", "serial", "serial.tools",
                    "serial.tools.list_ports")

RK3588_CPUINFO = "".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 48.00\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
    "asimddp\n"
    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {'0x2' if cpu < 4 else '0x4'}\n"
    f"CPU part\t: {'0xd05' if cpu < 4 else '0xd0b'}\nCPU revision\t: 0\n\n"
    for cpu in range(8)
)


@pytest.fixture(scope="module")
def this_machine() -> MachineInfo:
    return detect_machine()


def _flags_line() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    raise AssertionError("no flags line in /proc/cpuinfo")


def test_detection_reads_this_machine(this_machine):
    machine = this_machine
    assert machine.arch == platform.machine()
    assert machine.logical_cores == os.cpu_count()
    assert 1 <= machine.physical_cores <= machine.logical_cores
    assert set(machine.isa_flags) == _flags_line()
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert machine.memory_total_mb == pytest.approx(ram_mb, rel=0.01)
    assert "CPUExecutionProvider" in machine.onnx_providers
    assert "CPU" in machine.openvino_devices
    assert isinstance(machine.llm_gpu_offload, bool)
    assert isinstance(machine.serial_ports, list)
    zones = sorted(p.name for p in Path("/sys/class/thermal").glob("thermal_zone*"))
    assert [zone.name for zone in machine.thermal_zones] == zones
    assert machine.watchdog_devices == sorted(f"/dev/{p.name}" for p in Path("/dev").glob("watchdog*"))
    assert machine.notes == [], "every optional probe is installed in the project venv"


def test_dev_profile_fits_this_machine_and_the_rest_say_why_not(this_machine):
    ranking = rank_profiles(this_machine)
    assert sorted(fit.name for fit in ranking) == list_profiles()
    by_name = {fit.name: fit for fit in ranking}
    assert by_name["dev"].fits and by_name["dev"].reasons == []
    assert ranking[0].fits, "the best profile comes first"
    for fit in ranking:
        assert fit.fits == (not fit.reasons)
    if this_machine.arch == "x86_64":
        assert f"needs aarch64; this CPU is {this_machine.arch}" in by_name["arm64-rk3588"].reasons
    if this_machine.physical_cores < 12:
        assert (f"needs 12 physical cores; this machine has {this_machine.physical_cores}"
                in by_name["server-avx512-vnni"].reasons)


def test_cli_detect_text():
    result = CliRunner().invoke(cli, ["profile", "detect"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"This machine: {platform.machine()}, ")
    assert "onnxruntime providers: " in result.output and "CPUExecutionProvider" in result.output
    assert "\nBest profile: " in result.output
    for name in list_profiles():
        assert f"  {name} " in result.output
    assert "rejected" in result.output and "      - needs " in result.output


def test_cli_detect_json():
    result = CliRunner().invoke(cli, ["profile", "detect", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["machine"]["arch"] == platform.machine()
    assert document["machine"]["logical_cores"] == os.cpu_count()
    fitting = [fit["name"] for fit in document["ranking"] if fit["fits"]]
    assert document["best"] == fitting[0] and "dev" in fitting
    rejected = [fit for fit in document["ranking"] if not fit["fits"]]
    assert rejected and all(fit["reasons"] for fit in rejected)


def test_the_installed_entry_point_detects():
    """Through `python -m orbox`, the same path the box's shell takes."""
    completed = orbox_cli("profile", "detect", "--json")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["machine"]["arch"] == platform.machine()


def test_detection_works_without_any_optional_module(monkeypatch):
    for name in OPTIONAL_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    machine = detect_machine()
    assert machine.onnx_providers is None and machine.openvino_devices is None
    assert machine.llm_gpu_offload is None and machine.serial_ports is None
    assert machine.memory_total_mb > 0, "RAM falls back to /proc/meminfo without psutil"
    for name in ("onnxruntime", "openvino", "llama_cpp", "psutil", "serial.tools.list_ports"):
        assert f"{name} is not installed: its part of the detection is unknown" in machine.notes
    dev = judge(load_profile("dev"), machine)
    assert dev.fits and "onnxruntime providers not checked (onnxruntime missing)" in dev.notes
    result = CliRunner().invoke(cli, ["profile", "detect"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime providers: unknown (module not installed)" in result.output


@pytest.fixture
def rk3588_tree(tmp_path: Path) -> Path:
    """A fake RK3588 board: /proc (cpuinfo, meminfo), /sys (two thermal zones), /dev (watchdog)."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(RK3588_CPUINFO)
    (tmp_path / "proc" / "meminfo").write_text("MemTotal:       16161104 kB\nMemFree:        15000000 kB\n")
    for index, (kind, millidegrees) in enumerate([("soc-thermal", "45384"), ("bigcore0-thermal", "47230")]):
        zone = tmp_path / "sys" / "class" / "thermal" / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "watchdog").touch()
    return tmp_path


def test_detection_of_an_arm_board(rk3588_tree):
    machine = detect_machine(proc_root=rk3588_tree / "proc", sys_root=rk3588_tree / "sys",
                             dev_root=rk3588_tree / "dev", probe_runtimes=False)
    assert machine.arch == "aarch64" and machine.physical_cores == 8 and machine.logical_cores == 8
    assert {"asimd", "asimddp", "fphp", "asimdhp"} <= set(machine.isa_flags)
    assert machine.memory_total_mb == 16161104 // 1024
    assert [(z.name, z.type, z.temp_c) for z in machine.thermal_zones] == [
        ("thermal_zone0", "soc-thermal", 45.384), ("thermal_zone1", "bigcore0-thermal", 47.23)]
    assert machine.watchdog_devices == ["/dev/watchdog"] and machine.accelerator_kinds == []

    rk3588 = load_profile("arm64-rk3588")
    thermal = rk3588.thermal.model_copy(update={"sysfs_root": str(rk3588_tree / "sys" / "class" / "thermal")})
    rk3588 = rk3588.model_copy(update={"thermal": thermal})
    assert [p.name for p in rk3588.thermal.zone_dirs()] == ["thermal_zone0", "thermal_zone1"]
    others = [load_profile(name) for name in list_profiles() if name != "arm64-rk3588"]
    ranking = {fit.name: fit for fit in rank_profiles(machine, [rk3588, *others])}
    assert ranking["arm64-rk3588"].fits, ranking["arm64-rk3588"].reasons
    assert not any("thermal sources" in note for note in ranking["arm64-rk3588"].notes)
    assert ranking["jetson-orin"].reasons == [
        "needs 26624 MiB of RAM for its reservations and budgets; this machine has 15782 MiB",
        "needs accelerator nvidia-cuda; none found",
        "needs watchdog /dev/watchdog0; not present",
    ]
    assert ranking["dev"].reasons == ["needs x86_64; this CPU is aarch64"]


def test_accelerators_are_found_from_device_nodes(tmp_path):
    (tmp_path / "dev" / "accel").mkdir(parents=True)
    (tmp_path / "dev" / "accel" / "accel0").touch()
    card = tmp_path / "sys" / "class" / "drm" / "card0" / "device"
    card.mkdir(parents=True)
    (card / "vendor").write_text("0x8086\n")
    machine = detect_machine(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys",
                             dev_root=tmp_path / "dev", probe_runtimes=False)
    assert machine.accelerator_kinds == ["intel-igpu", "intel-npu"]
    assert f"cannot read {tmp_path / 'proc' / 'cpuinfo'}: CPU flags unknown" in machine.notes


def synthetic(**facts) -> MachineInfo:
    """A machine described directly, for ranking: an x86 box with every runtime present."""
    base = dict(arch="x86_64", cpu_model="test", isa_flags=["avx2", "fma", "f16c"], physical_cores=8,
                logical_cores=16, memory_total_mb=31_900, accelerator_kinds=[],
                onnx_providers=["CPUExecutionProvider"], openvino_devices=["CPU"], llm_gpu_offload=False,
                thermal_zones=[], watchdog_devices=["/dev/watchdog0"], serial_ports=["/dev/ttyUSB0"])
    return MachineInfo(**{**base, **facts})


def test_ranking_prefers_the_most_specific_sku():
    xeon = synthetic(isa_flags=["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"],
                     physical_cores=12, logical_cores=24, memory_total_mb=63_800)
    ranking = rank_profiles(xeon)
    assert [fit.name for fit in ranking if fit.fits] == ["server-avx512-vnni", "mini-avx2", "dev"]


def test_ranking_without_vnni_says_so():
    ryzen = synthetic()
    ranking = rank_profiles(ryzen)
    assert ranking[0].name == "mini-avx2" and ranking[0].fits
    server = next(fit for fit in ranking if fit.name == "server-avx512-vnni")
    assert "needs avx512_vnni; this CPU lacks it" in server.reasons
    assert "needs 12 physical cores; this machine has 8" in server.reasons


def test_ranking_checks_runtimes_and_devices():
    core_ultra = synthetic(isa_flags=["avx2", "fma", "f16c", "avx_vnni"], physical_cores=16, logical_cores=22,
                           accelerator_kinds=["intel-igpu", "intel-npu"],
                           onnx_providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"],
                           openvino_devices=["CPU", "GPU", "NPU"])
    assert rank_profiles(core_ultra)[0].name == "core-ultra-npu"
    no_npu = synthetic(**{**core_ultra.to_dict(), "openvino_devices": ["CPU", "GPU"], "thermal_zones": []})
    fit = judge(load_profile("core-ultra-npu"), no_npu)
    assert "needs OpenVINO device NPU; available: CPU, GPU" in fit.reasons
    orin = synthetic(arch="aarch64", isa_flags=["asimd", "asimddp", "fphp", "asimdhp"],
                     accelerator_kinds=["nvidia-cuda"], llm_gpu_offload=False, serial_ports=[])
    fit = judge(load_profile("jetson-orin"), orin)
    assert fit.reasons == [
        "needs onnxruntime CUDAExecutionProvider; this onnxruntime offers CPUExecutionProvider",
        "needs llama.cpp GPU offload (-1 layers); this llama.cpp build is CPU-only",
    ]
    assert "serial MCU port /dev/ttyTHS0 not present (unplugged?)" in fit.notes
