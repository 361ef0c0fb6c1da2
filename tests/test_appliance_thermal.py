"""Thermal governor on a fake sysfs tree and the MCU simulator, driving a real supervisor."""

from __future__ import annotations

from pathlib import Path

import pytest
from appliance_data.fixtures import (
    McuSim,
    audit_events,
    running_supervisor,
    site_config,
    wait_for,
    worker,
    write_zone,
)

from appliance.clients import Unavailable
from appliance.mcu_client import McuClient
from appliance.thermal import ThermalSensors
from appliance.thermal_census import MissingSensorError, take_census
from hw_profiles import load_profile


def test_ramp_sheds_llm_load_in_order_with_hysteresis_and_video_last(tiny_bundle: Path,
                                                                     tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    sysfs = tmp_path / "sys"
    write_zone(sysfs, 40.0)
    fan = sysfs / "cooling_device0"
    fan.mkdir()
    (fan / "max_state").write_text("10\n")
    (fan / "cur_state").write_text("0\n")
    sim = McuSim(tmp_path, temps=[30.0])  # the board MCU: a cool sensor, and the fan it drives
    request.addfinalizer(sim.stop)
    config = site_config(tmp_path, watchdog={"serial_port": str(sim.link)})
    with running_supervisor(tiny_bundle, config) as supervisor:
        video_pid = worker(supervisor.status(), "video")["pid"]
        frames_seen = [0]

        def step(celsius: float | None, band: str | None) -> dict:
            write_zone(sysfs, celsius)
            wait_for(lambda: supervisor.governor.band == band and supervisor.governor.effective_c is not None
                     and (celsius is None or abs(supervisor.governor.effective_c - celsius) < 0.01),
                     5, f"band {band!r} at {celsius} C")
            status = supervisor.status()
            video = worker(status, "video")
            assert video["state"] == "ready" and video["pid"] == video_pid  # video is never touched
            assert video["last_progress"]["progress"] >= frames_seen[0]
            frames_seen[0] = video["last_progress"]["progress"]
            return status

        step(77, "warm")
        wait_for(lambda: (fan / "cur_state").read_text().strip() == "10", 2, "the fan at max_state")
        step(72, "warm")  # below enter, above exit: hysteresis keeps the band
        step(69, None)
        wait_for(lambda: (fan / "cur_state").read_text().strip() == "0", 2, "the fan back to 0")
        step(86, "hot")
        wait_for(lambda: supervisor.status()["llm"]["reduced"], 2, "reduced LLM threads")
        assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 2}).result().finish_reason == "length"
        step(91, "very-hot")
        with pytest.raises(Unavailable, match="paused by the thermal governor") as paused:
            supervisor.llm.submit({"prompt": "Hi"})
        assert paused.value.retry_after_s > 0
        step(96, "extreme")
        wait_for(lambda: worker(supervisor.status(), "llm")["state"] == "stopped", 5, "the LLM to be stopped")
        step(88, "very-hot")  # leaving 'extreme' needs < 90; 88 keeps admission paused
        wait_for(lambda: worker(supervisor.status(), "llm")["state"] == "ready", 20, "the LLM to come back")
        step(60, None)
        assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 2}).result().usage.completion_tokens == 2
        status = step(None, "extreme")  # an unreadable sensor counts as hot, never as cold ...
        assert "No such file" in status["thermal"]["unreadable"]["sysfs:thermal_zone0"]
        wait_for(lambda: worker(supervisor.status(), "llm")["state"] == "stopped", 5, "the LLM to be stopped")
        assert not supervisor.shutdown_requested.is_set()  # ... but never shuts the box down
        step(40, None)
        step(101, "critical_shutdown")
        wait_for(supervisor.shutdown_requested.is_set, 2, "a controlled shutdown request")
        assert supervisor.shutdown_reason.startswith("thermal: hottest sensor 101.0 C >= critical 100.0 C")
    assert [e["duty"] for e in sim.events("set_fan")] == [100, 30, 100, 30, 100, 30, 100]
    events = audit_events(tmp_path / "state" / "audit.jsonl")
    transitions = [(e["fields"]["from_band"], e["fields"]["to_band"]) for e in events
                   if e["event"] == "thermal.transition"]
    assert transitions == [(None, "warm"), ("warm", None), (None, "hot"), ("hot", "very-hot"),
                           ("very-hot", "extreme"), ("extreme", "very-hot"), ("very-hot", None),
                           (None, "extreme"), ("extreme", None), (None, "critical_shutdown")]
    actions = [(e["fields"]["action"], e["fields"]["active"]) for e in events if e["event"] == "thermal.action"]
    assert actions[:6] == [("fan_up", True), ("fan_up", False), ("fan_up", True), ("llm_reduce_threads", True),
                           ("llm_pause_admission", True), ("llm_stop", True)]
    assert actions[-1] == ("shutdown", True)
    configured = [e["fields"] for e in events if e["event"] == "llm.configured"]
    assert configured[0] == {"threads": 1, "batch": 128}  # dev: 1 LLM thread is the floor, batch halves
    assert {"threads": 1, "batch": 256} in configured[1:]  # restored on cooling down
    video_touched = [e["seq"] for e in events if e["fields"].get("worker") == "video"
                     and e["event"] in ("worker.stop", "worker.exit", "worker.stalled")]
    llm_stops = [e["seq"] for e in events if e["event"] == "worker.stop" and e["fields"]["worker"] == "llm"]
    assert len(video_touched) == 1 and video_touched[0] > max(llm_stops)  # video only at the final shutdown


def test_sensors_read_sysfs_and_mcu_and_flag_faults(tmp_path: Path) -> None:
    sim = McuSim(tmp_path, temps=[51.5, None])
    write_zone(tmp_path / "sys", 47.25)
    write_zone(tmp_path / "sys", 45.0, zone="thermal_zone3")
    (tmp_path / "sys" / "thermal_zone9").mkdir()
    (tmp_path / "sys" / "thermal_zone9" / "temp").write_text("garbage\n")
    client = McuClient(str(sim.link))
    try:  # zone9 was readable at start: garbage now is a fault; zone7 never was: it is ignored
        reading = ThermalSensors(tmp_path / "sys", ["thermal_zone*"], client, use_psutil=False,
                                 expected={"thermal_zone0", "thermal_zone9", "thermal_zone7"}).read()
    finally:
        client.close()
        sim.stop()
    assert reading.temps == {"sysfs:thermal_zone0": 47.25, "sysfs:thermal_zone3": 45.0, "mcu:0": 51.5}
    assert set(reading.unreadable) == {"sysfs:thermal_zone9", "sysfs:thermal_zone7", "mcu:1"}
    assert reading.hottest == 51.5 and "gone (it was readable at start)" in reading.unreadable["sysfs:thermal_zone7"]
    assert ThermalSensors(tmp_path / "sys", ["thermal_zone*"], None, use_psutil=False).read().unreadable == {}
    empty = ThermalSensors(tmp_path / "nowhere", ["thermal_zone*"], None, use_psutil=False,
                           mcu_error="serial port /dev/ttyS1: cannot open").read()
    assert empty.hottest is None and set(empty.unreadable) == {"mcu"}


def test_a_required_sensor_missing_at_start_is_refused_unless_allowed(tmp_path: Path) -> None:
    box = load_profile("server-avx512-vnni").thermal
    with pytest.raises(MissingSensorError, match=r"thermal.required_sensors: sensor 'thermal_zone\*' is required, "
                                                 f"but no readable thermal zone under {tmp_path} matches it"):
        take_census(box, tmp_path, allow_missing=False)
    bench = take_census(box, tmp_path, allow_missing=True)
    sensors = ThermalSensors(tmp_path, ["thermal_zone*"], None, use_psutil=False)
    assert bench.missing == ("thermal_zone*",) and bench.unmanaged("server-avx512-vnni", sensors) == (
        "required sensor(s) ['thermal_zone*'] missing, allowed by --allow-missing-sensors")
    assert take_census(load_profile("dev").thermal, tmp_path, False).unmanaged("dev", sensors) == (
        "profile dev requires no sensor")
    write_zone(tmp_path, 45.0)
    write_zone(tmp_path, None, zone="thermal_zone1")  # present but unreadable at start: not a sensor
    census = take_census(box, tmp_path, allow_missing=False)
    assert census.zones == {"thermal_zone0"} and census.unmanaged("server-avx512-vnni", sensors) is None
