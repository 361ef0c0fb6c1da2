"""Profiles: the shipped SKUs load, and every kind of bad input names the file, the key and the reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from hw_profiles import Profile, ProfileError, list_profiles, load_profile
from hw_profiles.loader import PROFILES_DIR
from orbox.cli import cli

SHIPPED = ["arm64-rk3588", "core-ultra-npu", "dev", "jetson-orin", "mini-avx2", "server-avx512-vnni"]
DEV_TEXT = (PROFILES_DIR / "dev.toml").read_text(encoding="utf-8")


def dev_variant(tmp_path: Path, old: str, new: str, name: str = "sku.toml") -> Path:
    """dev.toml with one exact line replaced, written to tmp_path."""
    assert old in DEV_TEXT, f"test setup: {old!r} not in dev.toml"
    path = tmp_path / name
    path.write_text(DEV_TEXT.replace(old, new, 1), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    return [(p.file, p.key, p.reason) for p in caught.value.problems]


def test_the_six_skus_ship_and_load():
    assert list_profiles() == SHIPPED
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        header = (PROFILES_DIR / f"{name}.toml").read_text()
        assert header.startswith(f"# {name}: "), "each SKU opens with a comment naming its hardware"


def test_consumer_fields_have_the_documented_shapes():
    profile = load_profile("dev")
    assert profile.cpu.arch == "x86_64" and profile.cpu.isa_flags == ["avx2"]
    assert profile.cpu.video_cores == [0] and profile.cpu.llm_cores == [1]
    assert profile.llm.gguf_types == ["q8_0", "q6_k", "q5_k_m", "q4_k_m"]
    assert profile.llm.floor_type == "q4_k_m"
    assert profile.encoder.int8_scheme == "u8u8"
    assert [band.name for band in profile.thermal.bands] == ["warm", "hot", "very-hot", "extreme"]
    assert profile.thermal.sysfs_root == "/sys/class/thermal"
    assert profile.watchdog.device is None and profile.watchdog.serial_port is None
    assert profile.video.capture_device is None
    jetson = load_profile("jetson-orin")
    assert jetson.accelerators.onnx_providers[0] == "CUDAExecutionProvider"
    assert jetson.accelerators.llm_gpu_layers == -1 and jetson.accelerators.kind == "nvidia-cuda"
    assert load_profile("core-ultra-npu").accelerators.openvino_device == "NPU"
    assert load_profile("server-avx512-vnni").encoder.int8_scheme == "u8s8"
    assert load_profile("mini-avx2").encoder.int8_scheme in ("u8u8", "reduce_range")


def test_profiles_are_immutable_and_fingerprinted(tmp_path):
    profile = load_profile("dev")
    with pytest.raises(ValidationError):
        profile.llm.threads = 2
    same = load_profile(dev_variant(tmp_path, "poll_s = 1.0", "poll_s = 1.0  # same value"))
    other = load_profile(dev_variant(tmp_path, "poll_s = 1.0", "poll_s = 2.0", "other.toml"))
    assert same.fingerprint == profile.fingerprint != other.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", profile.fingerprint)


def test_load_by_path_equals_load_by_name():
    assert load_profile(PROFILES_DIR / "dev.toml") == load_profile("dev")


def test_unknown_name_lists_the_shipped_profiles():
    with pytest.raises(ProfileError, match="no such profile; shipped profiles are arm64-rk3588, "):
        load_profile("no-such-sku")


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.toml"
    assert problems_of(path) == [(str(path), "", "cannot read the file (No such file or directory)")]


def test_malformed_toml_names_file_line_and_key(tmp_path):
    path = dev_variant(tmp_path, "physical_cores = 2", "physical_cores = 2 2")
    [(file, key, reason)] = problems_of(path)
    assert (file, key) == (str(path), "cpu.physical_cores")
    line = DEV_TEXT.splitlines().index("physical_cores = 2") + 1
    assert reason.startswith("malformed TOML") and f"at line {line}," in reason


def test_unknown_key_is_rejected(tmp_path):
    path = dev_variant(tmp_path, "physical_cores = 2", "physical_cores = 2\nturbo_boost = true")
    assert problems_of(path) == [(str(path), "cpu.turbo_boost", "unknown key (check the spelling; the schema "
                                                               "is closed)")]


def test_wrong_type_says_what_was_expected_and_found(tmp_path):
    path = dev_variant(tmp_path, "physical_cores = 2", 'physical_cores = "2"')
    [(file, key, reason)] = problems_of(path)
    assert (file, key) == (str(path), "cpu.physical_cores")
    assert "valid integer" in reason and "found str '2'" in reason


def test_missing_key(tmp_path):
    path = dev_variant(tmp_path, 'vendor = "orbox"\n', "")
    assert problems_of(path) == [(str(path), "vendor", "required key is missing")]


def test_more_reserved_cores_than_exist(tmp_path):
    path = dev_variant(tmp_path, "llm_cores = [1]", "llm_cores = [1, 2, 3]")
    [(file, key, reason)] = problems_of(path)
    assert (file, key) == (str(path), "cpu.llm_cores")
    assert reason == "reserves core(s) [2, 3], but physical_cores = 2 (valid ids 0..1)"


def test_video_may_not_share_a_core_with_the_llm(tmp_path):
    path = dev_variant(tmp_path, "video_cores = [0]", "video_cores = [0, 1]")
    [(_, key, reason)] = problems_of(path)
    assert key == "cpu.llm_cores" and "[1] are also video_cores" in reason


def test_system_may_share_cores_on_a_small_box(tmp_path):
    path = dev_variant(tmp_path, "system_cores = [0]", "system_cores = [0, 1]")
    assert load_profile(path).cpu.system_cores == [0, 1]


def test_budget_larger_than_the_ram(tmp_path):
    path = dev_variant(tmp_path, "llm_budget_mb = 3072", "llm_budget_mb = 9000")
    [(file, key, reason)] = problems_of(path)
    assert (file, key) == (str(path), "memory.llm_budget_mb")
    assert reason == "9000 MiB is larger than the RAM (total_mb = 8192)"


def test_budgets_that_together_exceed_the_ram(tmp_path):
    path = dev_variant(tmp_path, "llm_budget_mb = 3072", "llm_budget_mb = 6000")
    [(_, key, reason)] = problems_of(path)
    assert key == "memory.llm_budget_mb"
    assert reason == ("os_reserved + video_reserved + llm_budget + encoder_budget = 10096 MiB, "
                      "more than total_mb = 8192")


def test_every_problem_is_reported_at_once(tmp_path):
    path = dev_variant(tmp_path, "physical_cores = 2", 'physical_cores = "2"\ncolour = "red"')
    path.write_text(path.read_text().replace("fps = 30.0", "fps = -1.0"))
    keys = {key for _, key, _ in problems_of(path)}
    assert keys == {"cpu.physical_cores", "cpu.colour", "video.fps"}


@pytest.mark.parametrize(("old", "new", "key", "fragment"), [
    ('int8_scheme = "u8u8"', 'int8_scheme = "u8s8"', "encoder.int8_scheme", "needs one of ['avx512_vnni'"),
    ('int8_scheme = "u8u8"', 'int8_scheme = "s8s8"', "encoder.int8_scheme", "'u8s8', 'u8u8', 'reduce_range'"),
    ("threads = 1", "threads = 2", "llm.threads", "2 threads but only 1 llm_cores"),
    ('floor_type = "q4_k_m"', 'floor_type = "q2_k"', "llm.floor_type", "unknown GGUF type 'q2_k'"),
    ('gguf_types = ["q8_0", "q6_k", "q5_k_m", "q4_k_m"]', 'gguf_types = ["q8_0", "q6_k"]', "llm.floor_type",
     "'q4_k_m' is not among gguf_types"),
    ('kv_cache_type = "f16"\nflash_attn = true', 'kv_cache_type = "q8_0"\nflash_attn = false',
     "llm.kv_cache_type", "needs flash_attn = true"),
    ('onnx_providers = ["CPUExecutionProvider"]', 'onnx_providers = ["CUDAExecutionProvider"]',
     "accelerators.onnx_providers", "must include CPUExecutionProvider"),
    ("llm_gpu_layers = 0", "llm_gpu_layers = 99", "accelerators.llm_gpu_layers", "kinds has no GPU"),
    ("exit_c = 70.0", "exit_c = 75.0", "thermal.bands.0.exit_c", "must be below enter_c = 75.0 (hysteresis)"),
    ('actions = ["fan_up"]', 'actions = ["spin_faster"]', "thermal.bands.0.actions.0",
     "'llm_stop' or 'shutdown'"),
    ("critical_c = 100.0", "critical_c = 90.0", "thermal.critical_c", "above the last band's enter_c = 95.0"),
    ("serial_baud = 115200", "serial_baud = 115201", "watchdog.serial_baud", "not a standard baud rate"),
    ('pixel_format = "rgb24"', 'pixel_format = "yuyv"', "video.pixel_format", "'rgb24', 'bgr24' or 'nv12'"),
    # Path.glob raises on these, so they would crash the supervisor's first thermal poll.
    ('sources = ["thermal_zone*"]', 'sources = ["/sys/class/thermal/thermal_zone0"]', "thermal.sources",
     "expected a glob relative to sysfs_root"),
    ('sources = ["thermal_zone*"]', 'sources = [""]', "thermal.sources", "found ''"),
    ("required_sensors = []", 'required_sensors = ["hwmon*"]', "thermal.required_sensors",
     "['hwmon*'] are not among sources ['thermal_zone*']"),
    ("timeout_s = 30", 'device = "watchdog0"\ntimeout_s = 30', "watchdog.device",
     "expected an absolute path such as /dev/ttyS1, found 'watchdog0'"),
])
def test_impossible_values_name_their_key(tmp_path, old, new, key, fragment):
    [(file, found_key, reason)] = problems_of(dev_variant(tmp_path, old, new))
    assert (file, found_key) == (str(tmp_path / "sku.toml"), key)
    assert fragment in reason, reason


def test_openvino_on_without_a_device_names_both_keys(tmp_path):
    path = dev_variant(tmp_path, 'openvino_device = "CPU"\n', "")
    path.write_text(path.read_text().replace("openvino = false", "openvino = true"))
    assert problems_of(path) == [(str(path), "encoder.openvino",
                                  "is true but accelerators.openvino_device is not set")]


def test_profile_model_accepts_a_dict_directly():
    document = load_profile("dev").model_dump()
    assert Profile.model_validate(document) == load_profile("dev")


def test_cli_validate_reports_ok_and_failures(tmp_path):
    good = PROFILES_DIR / "mini-avx2.toml"
    bad = dev_variant(tmp_path, "llm_budget_mb = 3072", "llm_budget_mb = 9000")
    runner = CliRunner()
    ok = runner.invoke(cli, ["profile", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"OK {good}: profile 'mini-avx2' (orbox) is valid\n"
    failed = runner.invoke(cli, ["profile", "validate", str(good), str(bad)])
    assert failed.exit_code == 1
    assert f"FAIL {bad}: memory.llm_budget_mb: 9000 MiB is larger than the RAM" in failed.output
    assert "Traceback" not in failed.output


def test_cli_list_and_show():
    runner = CliRunner()
    listed = runner.invoke(cli, ["profile", "list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.output.splitlines()] == SHIPPED
    shown = runner.invoke(cli, ["profile", "show", "arm64-rk3588"])
    assert shown.exit_code == 0
    assert 'cpu.arch = "aarch64"' in shown.output and "thermal.bands.3.actions = " in shown.output
    assert f"fingerprint sha256:{load_profile('arm64-rk3588').fingerprint}" in shown.output
    as_json = json.loads(runner.invoke(cli, ["profile", "show", "jetson-orin", "--json"]).output)
    assert as_json["profile"]["accelerators"]["onnx_providers"][0] == "CUDAExecutionProvider"
    assert as_json["source"] == str(PROFILES_DIR / "jetson-orin.toml")
    listed_json = json.loads(runner.invoke(cli, ["profile", "list", "--json"]).output)
    assert [entry["name"] for entry in listed_json] == SHIPPED
    missing = runner.invoke(cli, ["profile", "show", "nope"])
    assert missing.exit_code == 1 and missing.output.startswith("error: nope: no such profile")
