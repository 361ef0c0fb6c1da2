"""The fleet path (issue 19): the hawkBit DDI client against a local server that checks every request and
response against the published DDI API (tests/fleet_data/ddi.schema.json), on a simulated box whose RAUC
and GRUB behave as the qemu A/B test shows them to.

What it shows: the client is off without [fleet]; it sends only the allow-listed device attributes; it
downloads with resume, verifies the sha256 hawkBit gave before RAUC sees a byte, and reports success only
after the new slot booted and was marked good, failure after a fallback or an interrupted install, each
with its reason; the token goes only to the server and never into a log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shlex
import threading
from pathlib import Path

import pytest
from api_data.tls import self_signed_cert
from click.testing import CliRunner
from fleet_data.box import PowerCut, SimulatedBox
from fleet_data.server import FakeHawkbit, violations_of

from appliance.config import ConfigError, FleetConfig, parse_config
from appliance.fleet.agent import Box, FleetAgent
from appliance.fleet.attributes import device_attributes
from appliance.fleet.cli import run
from appliance.fleet.ddi import DdiClient, DdiError, parse_sleep
from appliance.fleet.pending import PendingAction, PendingError, PendingStore, decide
from orbox.cli import cli

TOKEN = "9c1f7e1d5e2b4a8f-target-token"
BUNDLE = random.Random(19).randbytes(300_000)
ATTRIBUTE_KEYS = {"orbox.profile", "orbox.image_version", "orbox.software", "rauc.compatible", "rauc.booted_slot",
                  "hw.arch", "hw.cpu_model", "hw.cpu_cores", "hw.memory_mb"}


@pytest.fixture
def server():
    with FakeHawkbit(token=TOKEN) as fake:
        yield fake
        assert not fake.violations, "\n".join(fake.violations)


def _settings(server: FakeHawkbit, **overrides) -> FleetConfig:
    return FleetConfig(server_url=server.url, controller_id=server.controller_id, target_token=TOKEN,
                       retry_initial_s=0.01, retry_max_s=0.02, **overrides)


def _agent(server, box: SimulatedBox, work, **overrides) -> FleetAgent:
    """A fresh client process: nothing carried over but what is on disk."""
    settings = _settings(server, **overrides)
    client = DdiClient(settings.server_url, settings.tenant, settings.controller_id, TOKEN, timeout_s=5,
                       ca_file=settings.ca_file)
    return FleetAgent(settings, client, Box(box, lambda status: device_attributes("dev", "1.0.0", status),
                                             box.boot_id, box.power_cycle), work)


def _executions(action) -> list[tuple[str, str]]:
    return [(fb["status"]["execution"], fb["status"]["result"]["finished"]) for fb in action.feedback]


def _install(server, box, tmp_path):
    action = server.assign("7", {"orbox-2.0.0.raucb": BUNDLE})
    _agent(server, box, tmp_path).cycle()
    return action


def test_success_is_reported_only_after_the_new_slot_booted_and_was_marked_good(server, tmp_path):
    box = SimulatedBox()
    action = _install(server, box, tmp_path)
    assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()]
    assert _executions(action) == [("download", "none"), ("downloaded", "none"), ("proceeding", "none"),
                                   ("proceeding", "none")]
    assert action.open and "written to slot B" in action.feedback[-1]["status"]["details"][0]
    pending = json.loads((tmp_path / "pending-action.json").read_text())
    assert (pending["action_id"], pending["target_slot"], pending["phase"]) == ("7", "B", "installed")

    _agent(server, box, tmp_path).cycle()  # same boot: the new slot has not run, nothing is decided
    assert box.power_cycle() == "B"
    _agent(server, box, tmp_path).cycle()  # B booted but mark-good has not run yet
    assert action.open and len(action.feedback) == 4 and box.installed == [hashlib.sha256(BUNDLE).hexdigest()]

    box.mark_good()
    _agent(server, box, tmp_path).cycle()
    assert not action.open and _executions(action)[-1] == ("closed", "success")
    assert "booted from slot B (rootfs.1) and was marked good" in action.feedback[-1]["status"]["details"][0]
    assert not (tmp_path / "pending-action.json").exists()
    _agent(server, box, tmp_path).cycle()  # hawkBit asks for the attributes after a successful update
    assert server.config_data[-1]["data"]["rauc.booted_slot"] == "B"


def test_with_reboot_after_install_the_box_reboots_itself_and_still_waits_for_mark_good(server, tmp_path):
    box = SimulatedBox()
    action = server.assign("7", {"orbox-2.0.0.raucb": BUNDLE})
    _agent(server, box, tmp_path, reboot_after_install=True).cycle()
    assert box.booted == "B" and "it boots now" in action.feedback[-1]["status"]["details"][0]
    _agent(server, box, tmp_path, reboot_after_install=True).cycle()
    assert action.open, "rebooted into B, but not marked good yet"
    box.mark_good()
    _agent(server, box, tmp_path, reboot_after_install=True).cycle()
    assert _executions(action)[-1] == ("closed", "success")


def test_a_fallback_is_reported_as_failure_with_what_rauc_says_of_the_slot(server, tmp_path):
    box = SimulatedBox()
    action = _install(server, box, tmp_path)
    assert box.power_cycle() == "B"
    box.mark_bad()  # orbox-mark-good after a failed self-check; then it reboots
    assert box.power_cycle() == "A"
    _agent(server, box, tmp_path).cycle()
    assert _executions(action)[-1] == ("closed", "failure")
    details = action.feedback[-1]["status"]["details"][0]
    assert "slot B (rootfs.1) was installed but the box booted slot A again: RAUC says slot B (rootfs.1) is bad" \
        in details


def test_a_slot_that_never_comes_up_falls_back_and_fails(server, tmp_path):
    """A hang before the self-check: the watchdog resets it; GRUB gives up on B after its tries."""
    box = SimulatedBox(tries=3)
    action = _install(server, box, tmp_path)
    assert [box.power_cycle() for _ in range(4)] == ["B", "B", "B", "A"]
    _agent(server, box, tmp_path).cycle()
    assert _executions(action)[-1] == ("closed", "failure")


def test_a_power_cut_during_the_install_is_reported_after_the_next_boot(server, tmp_path):
    box = SimulatedBox()
    box.cut_power_during_install = True
    action = server.assign("8", {"orbox-2.0.0.raucb": BUNDLE})
    with pytest.raises(PowerCut):
        _agent(server, box, tmp_path).cycle()
    assert json.loads((tmp_path / "pending-action.json").read_text())["phase"] == "installing"
    box.cut_power_during_install = False
    assert box.power_cycle() == "A"
    _agent(server, box, tmp_path).cycle()
    assert _executions(action)[-1] == ("closed", "failure") and box.installed == []
    assert "restarted before `rauc install` finished writing slot B" in action.feedback[-1]["status"]["details"][0]


def test_download_resumes_with_ranges_after_broken_connections(server, tmp_path):
    server.cut_downloads = [1000, 50_000]
    box = SimulatedBox()
    _install(server, box, tmp_path)
    ranges = [r.headers.get("Range") for r in server.requests if "/artifacts/" in r.path]
    assert ranges == [None, "bytes=1000-", "bytes=51000-"]
    assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()]
    assert list((tmp_path / "downloads").iterdir()) == [], "the bundle is removed once RAUC has it"


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    server.cut_downloads, server.ignore_range = [70_000], True
    box = SimulatedBox()
    _install(server, box, tmp_path)
    assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()]


def test_a_wrong_sha256_never_reaches_rauc(server, tmp_path):
    box = SimulatedBox()
    action = server.assign("9", {"orbox-2.0.0.raucb": BUNDLE}, sha256=hashlib.sha256(b"other").hexdigest())
    _agent(server, box, tmp_path).cycle()
    assert box.installed == [] and _executions(action)[-1] == ("closed", "failure")
    assert "does not match" in action.feedback[-1]["status"]["details"][0]
    assert list((tmp_path / "downloads").iterdir()) == [] and not (tmp_path / "pending-action.json").exists()


def test_a_download_that_never_completes_fails_after_its_attempts(server, tmp_path):
    server.cut_downloads = [10] * 3
    box = SimulatedBox()
    action = server.assign("10", {"orbox-2.0.0.raucb": BUNDLE})
    _agent(server, box, tmp_path, download_attempts=3).cycle()
    assert box.installed == [] and _executions(action)[-1] == ("closed", "failure")
    assert "no complete download after 3 attempts" in action.feedback[-1]["status"]["details"][0]
    assert not list((tmp_path / "downloads").glob("*.raucb")), "a partial file is never renamed to a bundle"


def test_a_bundle_rauc_refuses_is_reported_with_raucs_reason(server, tmp_path):
    box = SimulatedBox()
    box.refuse = "orbox pre-install: REFUSED bundle is for profile 'mini-avx2', this box is 'dev'"
    action = _install(server, box, tmp_path)
    assert _executions(action)[-1] == ("closed", "failure")
    assert "REFUSED bundle is for profile 'mini-avx2'" in action.feedback[-1]["status"]["details"][0]
    assert not (tmp_path / "pending-action.json").exists() and box.env["ORDER"] == "A B"


def test_a_deployment_without_exactly_one_rauc_bundle_is_refused(server, tmp_path):
    box = SimulatedBox()
    action = server.assign("11", {"app.tgz": b"x", "readme.txt": b"y"})
    _agent(server, box, tmp_path).cycle()
    assert _executions(action) == [("closed", "failure")] and box.installed == []
    assert "expected exactly one .raucb artifact" in action.feedback[0]["status"]["details"][0]


def test_outside_the_maintenance_window_it_downloads_and_waits(server, tmp_path):
    box = SimulatedBox()
    action = server.assign("12", {"orbox-2.0.0.raucb": BUNDLE}, maintenance_window="unavailable")
    _agent(server, box, tmp_path).cycle()
    assert box.installed == [] and _executions(action) == [("download", "none"), ("downloaded", "none")]
    action.maintenance_window = "available"
    _agent(server, box, tmp_path).cycle()
    assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()]
    assert sum("/artifacts/" in r.path for r in server.requests) == 1, "the verified file is kept, not fetched again"


def test_cancel_is_confirmed_before_install_and_rejected_after(server, tmp_path):
    box = SimulatedBox()
    server.assign("13", {"orbox-2.0.0.raucb": BUNDLE}, maintenance_window="unavailable")
    server.cancel = ("13", "13")
    _agent(server, box, tmp_path).cycle()
    assert [fb["status"]["execution"] for fb in server.cancel_feedback] == ["closed"]
    assert not server.actions["13"].open and box.installed == []

    action = _install(server, box, tmp_path)
    server.cancel = (action.id, action.id)
    _agent(server, box, tmp_path).cycle()
    assert server.cancel_feedback[-1]["status"]["execution"] == "rejected"
    assert "already written to slot B" in server.cancel_feedback[-1]["status"]["details"][0]


def test_only_allow_listed_device_attributes_are_sent(server, tmp_path):
    box = SimulatedBox()
    _agent(server, box, tmp_path).cycle()
    [sent] = server.config_data
    assert sent["mode"] == "replace" and set(sent["data"]) == ATTRIBUTE_KEYS
    assert (sent["data"]["orbox.profile"], sent["data"]["rauc.booted_slot"]) == ("dev", "A")
    assert len(server.config_data) == 1
    _agent(server, box, tmp_path).cycle()
    assert len(server.config_data) == 1, "sent again only when the server asks"


@pytest.mark.parametrize("cdn", ["link", "redirect"])
def test_the_token_goes_only_to_the_server_and_never_into_logs_or_status(server, tmp_path, caplog, cdn):
    """Artifacts on another host (a CDN link, or the server's redirect to one) are fetched without the token."""
    caplog.set_level(logging.DEBUG)
    box = SimulatedBox()
    server.assign("14", {"orbox-2.0.0.raucb": BUNDLE}, cdn=cdn)
    _agent(server, box, tmp_path).cycle()
    assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()]
    on_cdn = [r for r in server.requests if r.headers.get("Host", "").startswith("localhost")]
    assert len(on_cdn) == 1 and "Authorization" not in on_cdn[0].headers
    assert all(r.headers.get("Authorization") == f"TargetToken {TOKEN}" for r in server.requests if r not in on_cdn)
    assert TOKEN not in caplog.text and TOKEN not in (tmp_path / "status.json").read_text()
    assert TOKEN not in (tmp_path / "pending-action.json").read_text()


def test_https_with_the_hospital_ca_and_refused_without_it(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with FakeHawkbit(token=TOKEN, tls=(cert, key)) as server:
        server.assign("15", {"orbox-2.0.0.raucb": BUNDLE})
        box = SimulatedBox()
        _agent(server, box, tmp_path, ca_file=cert).cycle()
        assert box.installed == [hashlib.sha256(BUNDLE).hexdigest()] and not server.violations
        with pytest.raises(DdiError, match="cannot reach the server .*CERTIFICATE_VERIFY_FAILED"):
            DdiClient(server.url, server.tenant, server.controller_id, TOKEN, timeout_s=5).poll()


def test_a_wrong_token_is_an_error_that_does_not_name_it(server):
    client = DdiClient(server.url, server.tenant, server.controller_id, "wrong-token", timeout_s=5)
    with pytest.raises(DdiError, match="HTTP 401") as caught:
        client.poll()
    assert caught.value.status == 401 and "wrong-token" not in str(caught.value)


def test_the_poll_loop_backs_off_while_the_server_is_down_and_records_why(tmp_path):
    with FakeHawkbit(token=TOKEN) as gone:
        url = gone.url
    settings = FleetConfig(server_url=url, controller_id="or-box-1", target_token=TOKEN, retry_initial_s=1,
                           retry_max_s=4)
    agent = FleetAgent(settings, DdiClient(url, "DEFAULT", "or-box-1", TOKEN, timeout_s=2),
                       Box(SimulatedBox(), lambda status: {}), tmp_path)

    class Stop(threading.Event):
        waits: list[float] = []

        def wait(self, timeout=None):
            self.waits.append(timeout)
            if len(self.waits) == 4:
                self.set()
            return self.is_set()

    stop = Stop()
    agent.run(stop)
    assert stop.waits == [1, 2, 4, 4]
    status = json.loads((tmp_path / "status.json").read_text())
    assert "cannot reach the server" in status["last_error"] and TOKEN not in json.dumps(status)


def test_the_server_poll_interval_is_honoured(server, tmp_path):
    server.sleep = "00:02:05"
    assert _agent(server, SimulatedBox(), tmp_path).cycle() == 125.0
    assert [parse_sleep(text) for text in ("12:00:00", "00:00:30", "1:00", None)] == [43200.0, 30.0, None, None]


def test_the_verdict_waits_for_a_new_boot_and_for_mark_good():
    action = PendingAction("5", "2.0.0", "0" * 64, "boot-1", "A", "B", "rootfs.1", "installed")
    box = SimulatedBox()
    box.env.update({"ORDER": "B A", "B_OK": "1", "B_TRY": "0"})
    assert decide(action, box.status(), "boot-1") is None, "the installing boot decides nothing"
    box.power_cycle()
    assert decide(action, box.status(), "boot-2") is None, "booted B, not marked good yet"
    box.mark_good()
    assert decide(action, box.status(), "boot-2").success


def test_an_unreadable_pending_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "pending-action.json"
    path.write_text('{"action_id": "5"')
    with pytest.raises(PendingError, match=r"pending-action.json: unreadable .* delete it"):
        PendingStore(path).load()


def test_the_fake_server_schema_rejects_what_hawkbit_would(server):
    """The checks that guard every exchange above do fire (a schema that accepts anything proves nothing)."""
    assert violations_of("actionFeedback", {"status": {"execution": "done", "result": {"finished": "success"}}})
    assert violations_of("actionFeedback", {"status": {"execution": "closed", "result": {"final": "success"}}})
    assert violations_of("configData", {"data": {"k": "v" * 129}})
    assert violations_of("configData", {"data": {}, "mode": "replace"})
    assert not violations_of("configData", {"data": {"k": "v"}, "mode": "replace"})
    assert violations_of("controllerBase", {"config": {"polling": {"sleep": "5 minutes"}}})


def test_config_is_off_by_default_and_partial_config_names_what_is_missing():
    assert not parse_config({}, "site.toml").fleet.enabled
    with pytest.raises(ConfigError) as caught:
        parse_config({"fleet": {"server_url": "https://hawkbit.example", "target_token": TOKEN}}, "site.toml")
    assert "site.toml: section [fleet]:" in str(caught.value) and "add controller_id" in str(caught.value)
    assert TOKEN not in str(caught.value)
    with pytest.raises(ConfigError, match=r"site.toml: key 'fleet.server_url': .*use https://"):
        parse_config({"fleet": {"server_url": "http://hawkbit.example", "controller_id": "b", "target_token": TOKEN}},
                     "site.toml")
    with pytest.raises(ConfigError) as caught:
        parse_config({"fleet": {"server_url": "https://h", "controller_id": "b", "target_token": ["x", TOKEN]}}, "s")
    assert "key 'fleet.target_token'" in str(caught.value) and TOKEN not in str(caught.value)


def test_orbox_fleet_run_without_fleet_config_does_nothing(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the fleet client is off: it must not open a socket")

    monkeypatch.setattr(socket, "create_connection", no_network)
    config = tmp_path / "site.toml"
    config.write_text(f'[supervisor]\nstate_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(cli, ["fleet", "run", "--config", str(config), "--profile", "dev",
                                      "--image-version", "1.0.0"])
    assert result.exit_code == 0 and "orbox fleet: off" in result.output
    result = CliRunner().invoke(cli, ["fleet", "status", "--config", str(config)])
    assert result.exit_code == 0 and result.output.startswith("fleet: off")


def test_orbox_fleet_status_shows_the_pending_install_and_not_the_token(server, tmp_path):
    box = SimulatedBox()
    _install(server, box, tmp_path)
    config = tmp_path / "site.toml"
    config.write_text(f'[fleet]\nserver_url = "{server.url}"\ncontroller_id = "{server.controller_id}"\n'
                      f'target_token = "{TOKEN}"\nwork_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(cli, ["fleet", "status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "pending install: action 7 version 2.0.0 to slot B (installed)" in result.output
    assert TOKEN not in result.output


def test_the_unit_reaches_loopback_only_by_default_and_starts_after_mark_good():
    unit = (Path(__file__).parent.parent / "appliance" / "systemd" / "orbox-fleet.service").read_text()
    assert "IPAddressDeny=any" in unit and re.findall(r"^IPAddressAllow=(.*)$", unit, re.M) == ["localhost"]
    assert "orbox-mark-good.service" in re.search(r"^After=(.*)$", unit, re.M).group(1).split()
    [exec_start] = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: {"ORBOX_PROFILE": "dev", "ORBOX_VERSION": "1.0.0",
                                                           "ORBOX_CONFIG": "/etc/orbox/orbox.toml"}[m[1]],
                              exec_start))
    assert argv[1:3] == ["fleet", "run"]
    params = run.make_context("run", argv[3:]).params
    assert (params["config_path"], params["profile_name"], params["image_version"]) == (
        "/etc/orbox/orbox.toml", "dev", "1.0.0")
