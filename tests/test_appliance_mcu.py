"""Serial MCU: frame codec and CRC, and the real pyserial client against `orbox mcu-sim` on a pty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial
from appliance_data.fixtures import McuSim, wait_for

from appliance.mcu_client import McuClient, McuError
from appliance.mcu_protocol import SOF, Cmd, Frame, FrameDecoder, FrameError, NakError, crc16_ccitt


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1  # the catalogue check value of CRC-16/CCITT-FALSE


def test_decoder_rejects_bad_crc_and_resynchronises() -> None:
    good = Frame(seq=7, cmd=Cmd.SET_FAN, payload=bytes([55])).encode()
    corrupt = bytearray(Frame(seq=8, cmd=Cmd.FEED).encode())
    corrupt[-1] ^= 0x01
    decoder = FrameDecoder()
    items = decoder.feed(b"\x00\x13" + bytes(corrupt) + good[:3])
    items += decoder.feed(good[3:])
    assert isinstance(items[0], FrameError) and "bad CRC" in items[0].reason and items[0].seq == 8
    assert items[1:] == [Frame(seq=7, cmd=Cmd.SET_FAN, payload=bytes([55]))]


def test_decoder_rejects_an_impossible_length() -> None:
    items = FrameDecoder().feed(bytes([SOF, 200, 1, 1]) + Frame(1, Cmd.FEED).encode())
    assert isinstance(items[0], FrameError) and "length 200" in items[0].reason
    assert items[1] == Frame(1, Cmd.FEED)


def test_client_feeds_reads_temps_and_sets_the_fan(mcu_sim: McuSim) -> None:
    client = McuClient(str(mcu_sim.link))
    try:
        assert client.reset_cause() == ("power_on", 0)
        client.feed()
        client.feed()
        assert client.read_temps() == [41.0, 43.5]
        mcu_sim.set_temps([55.25, None])
        assert client.read_temps() == [55.25, None]  # None: the MCU reports a sensor fault
        assert client.set_fan(80) == 80 and client.get_fan() == 80
        with pytest.raises(ValueError, match="0..100"):
            client.set_fan(101)
    finally:
        client.close()
    assert len(mcu_sim.events("feed")) == 2
    assert mcu_sim.events("set_fan")[-1]["duty"] == 80


def test_frame_with_bad_crc_is_rejected_with_a_nak(mcu_sim: McuSim) -> None:
    corrupt = bytearray(Frame(seq=9, cmd=Cmd.FEED).encode())
    corrupt[-2] ^= 0xFF
    with serial.Serial(str(mcu_sim.link), 115200, timeout=0.05) as port:
        port.write(bytes(corrupt))
        decoder, replies = FrameDecoder(), []
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            replies = decoder.feed(port.read(64))
    assert replies[0].cmd == Cmd.NAK and replies[0].payload[1] == NakError.BAD_CRC
    assert mcu_sim.events("feed") == []  # the corrupt FEED did not feed the watchdog
    assert "bad CRC" in mcu_sim.events("bad_frame")[0]["reason"]


def test_mcu_resets_the_host_when_feeds_stop(tmp_path: Path) -> None:
    sim = McuSim(tmp_path, timeout_s=0.5)
    client = McuClient(str(sim.link))
    try:
        client.feed()
        wait_for(lambda: sim.events("watchdog_reset"), 5, "the MCU watchdog to fire")
        assert client.reset_cause() == ("watchdog", 1)
    finally:
        client.close()
        sim.stop()


def test_client_reports_an_unanswered_request(tmp_path: Path) -> None:
    sim = McuSim(tmp_path)
    client = McuClient(str(sim.link), timeout_s=0.2)
    sim.process.send_signal(19)  # SIGSTOP: the MCU stops answering
    try:
        with pytest.raises(McuError, match="FEED failed .no reply within 0.2s"):
            client.feed()
    finally:
        sim.process.send_signal(18)
        client.close()
        sim.stop()


def test_client_names_a_missing_port(tmp_path: Path) -> None:
    with pytest.raises(McuError, match="mcu.tty: cannot open"):
        McuClient(str(tmp_path / "mcu.tty"))
