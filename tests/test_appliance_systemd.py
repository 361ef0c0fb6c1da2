"""The shipped systemd units: valid for systemd-analyze, and consistent with what `orbox serve` does.

orbox.service is the image's unit too (`orbox image build` installs it unchanged), so it is verified
together with the image's own units, which it requires.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import appliance
from appliance.cli import EXIT_THERMAL_SHUTDOWN
from appliance.config import load_config

UNITS = Path(appliance.__file__).parent / "systemd"
IMAGE_DEFAULTS = Path(__file__).resolve().parents[1] / "image_build" / "defaults"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze checks that each ExecStart exists: point them at this venv's orbox and the image's scripts."""
    orbox = Path(sys.executable).with_name("orbox")
    scripts = tmp_path / "libexec"
    scripts.mkdir()
    for script in ("selfcheck", "install-payload", "mark-good"):
        shutil.copyfile(IMAGE_DEFAULTS / script, scripts / script)
        (scripts / script).chmod(0o755)
    for unit in [*UNITS.glob("*.service"), *IMAGE_DEFAULTS.glob("*.service")]:
        text = unit.read_text().replace("/var/lib/orbox/venv/bin/orbox", str(orbox))
        (tmp_path / unit.name).write_text(text.replace("/usr/libexec/orbox/", f"{scripts}/"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, sorted(tmp_path.glob("*.service")))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "orbox" not in result.stderr  # no warning about our units


def test_service_matches_the_supervisor_contract() -> None:
    service = _unit("orbox.service")["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main" and int(service["WatchdogSec"]) > 0
    assert " serve --profile " in service["ExecStart"] and service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed" and service["IPAddressDeny"] == "any"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["RestartPreventExitStatus"] == str(EXIT_THERMAL_SHUTDOWN)
    example = load_config(UNITS / "site.toml.example")
    assert example.supervisor.shutdown_timeout_s < int(service["TimeoutStopSec"])
    mcu = _unit("orbox-mcu-sim.service")["Service"]
    assert f"--link {example.watchdog.serial_port}" in mcu["ExecStart"]
