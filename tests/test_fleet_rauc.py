"""The fleet client's RAUC boundary against real RAUC 1.8: `rauc status` JSON as the client parses it,
the verdict it reaches after a real `rauc status mark-good` / `mark-bad`, and a real `rauc install`
refusal reaching hawkBit's feedback text. The slot write itself is the qemu test's (no dm-verity here).
"""

from __future__ import annotations

import random

import pytest
from click.testing import CliRunner
from fleet_data.real_rauc import RealRauc
from fleet_data.server import FakeHawkbit
from image_data.helpers import write_rauc_bundle

from appliance.fleet.pending import PendingAction, decide
from appliance.fleet.rauc import RaucCli, RaucError
from image_build.rauc_bundle import signer_from_prefix
from orbox.cli import cli
from primitives.update_keys import generate_update_pki

TOKEN = "3f0c-real-rauc-token"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-pki")
    generate_update_pki(root / "vendor")
    generate_update_pki(root / "intruder")
    return root


@pytest.fixture
def rauc(tmp_path, pki, monkeypatch):
    with RealRauc(tmp_path, signer_from_prefix(pki / "vendor").keyring) as real:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", real.env["DBUS_SYSTEM_BUS_ADDRESS"])
        yield real


def _installed_to_b(rauc: RealRauc) -> PendingAction:
    """What RAUC leaves after writing B from A: B primary, OK=1, TRY=0 (set-primary through the backend)."""
    assert rauc.power_cycle() == "A"
    assert rauc.cli("status", "mark-good").returncode == 0  # orbox-mark-good, on every boot
    assert rauc.cli("status", "mark-active", "other").returncode == 0
    assert rauc.read_env()["ORDER"] == "B A"
    return PendingAction("21", "2.0.0", "0" * 64, "boot-1", "A", "B", "rootfs.1", "installed")


def test_status_json_of_real_rauc_parses_into_the_slots_the_client_needs(rauc):
    assert rauc.power_cycle() == "A"
    status = RaucCli().status()
    assert (status.compatible, status.booted, status.boot_primary) == ("orbox-dev", "A", "rootfs.0")
    assert status.other_slot().name == "rootfs.1" and status.other_slot().bootname == "B"
    assert status.slots["rootfs.0"].boot_status == "bad", "this boot counted a try; not confirmed yet"
    assert rauc.cli("status", "mark-good").returncode == 0
    status = RaucCli().status()
    assert status.slots["rootfs.0"].boot_status == "good" and status.slots["rootfs.1"].boot_status == "bad"


def test_success_needs_the_real_mark_good_in_the_new_boot(rauc):
    action = _installed_to_b(rauc)
    assert decide(action, RaucCli().status(), "boot-1") is None
    assert rauc.power_cycle() == "B"
    assert decide(action, RaucCli().status(), "boot-2") is None, "GRUB counted the try: not good before mark-good"
    assert rauc.cli("status", "mark-good").returncode == 0  # what orbox-mark-good runs after an OK self-check
    verdict = decide(action, RaucCli().status(), "boot-2")
    assert verdict.success and "marked good" in verdict.details[0]


def test_mark_bad_and_the_fallback_are_a_failure_naming_the_bad_slot(rauc):
    action = _installed_to_b(rauc)
    assert rauc.power_cycle() == "B"
    assert rauc.cli("status", "mark-bad").returncode == 0  # orbox-mark-good after a failed self-check
    assert rauc.power_cycle() == "A"
    verdict = decide(action, RaucCli().status(), "boot-3")
    assert not verdict.success and "booted slot A again: RAUC says slot B (rootfs.1) is bad" in verdict.details[0]


def test_a_bundle_from_another_signer_is_refused_by_real_rauc_before_any_write(rauc, pki, tmp_path):
    assert rauc.power_cycle() == "A"
    bundle = write_rauc_bundle(tmp_path / "foreign.raucb", signer_from_prefix(pki / "intruder"),
                               image=random.Random(21).randbytes(20_000), version="2.0.0")
    before = (tmp_path / "slot-b.img").read_bytes()
    with pytest.raises(RaucError, match=r"rauc install exited 1: Installing .*foreign.raucb. failed \| "
                                         r"LastError: signature verification failed"):
        RaucCli().install(bundle)
    assert (tmp_path / "slot-b.img").read_bytes() == before and rauc.read_env()["ORDER"] == "A B"


def test_orbox_fleet_run_once_reports_real_rauc_facts_and_a_real_refusal(rauc, pki, tmp_path):
    """The CLI as the unit starts it: attributes from real `rauc status`, a bundle from a foreign signer
    downloaded, verified, handed to real `rauc install`, and RAUC's reason sent as the action's failure."""
    assert rauc.power_cycle() == "A"
    bundle = write_rauc_bundle(tmp_path / "foreign.raucb", signer_from_prefix(pki / "intruder"),
                               image=random.Random(22).randbytes(20_000), version="2.0.0")
    with FakeHawkbit(token=TOKEN) as server:
        action = server.assign("31", {"orbox-2.0.0.raucb": bundle.read_bytes()})
        config = tmp_path / "site.toml"
        config.write_text(f'[fleet]\nserver_url = "{server.url}"\ncontroller_id = "{server.controller_id}"\n'
                          f'target_token = "{TOKEN}"\nwork_dir = "{tmp_path / "fleet"}"\n')
        result = CliRunner().invoke(cli, ["fleet", "run", "--once", "--config", str(config), "--profile", "dev",
                                          "--image-version", "1.0.0"])
        assert result.exit_code == 0, result.output
        assert not server.violations, server.violations
    attributes = server.config_data[0]["data"]
    assert (attributes["rauc.compatible"], attributes["rauc.booted_slot"], attributes["orbox.profile"]) == (
        "orbox-dev", "A", "dev")
    final = action.feedback[-1]["status"]
    assert (final["execution"], final["result"]["finished"]) == ("closed", "failure")
    assert "LastError: signature verification failed" in final["details"][0]
    assert rauc.read_env()["ORDER"] == "A B" and TOKEN not in result.output
