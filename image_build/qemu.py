"""qemu-system-x86_64 boots a factory disk as a box would: OVMF firmware, GRUB from the ESP, the slot's
own kernel and initrd (software emulation: no KVM on the build VM).

Each `power_on` is one power cycle of the same disk: the firmware variables and the disk persist
between calls, the guest's script arrives through fw_cfg (opt/orbox/script), and `cut_power_on`
kills qemu as soon as the console shows a line, which is how the tests pull the plug. The box has
a hardware watchdog (an emulated i6300esb whose timeout resets the machine; with -no-reboot any
reset ends the power cycle); qemu reports it firing only over QMP, so that is read too and noted
on the console. qemu exits 0 whatever happened inside, so verdicts come from parsing the console.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import require_tool

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
SELF_CHECK = re.compile(r"orbox self-check: (OK|FAIL)\b([^\r\n]*)")
WATCHDOG_FIRED = "[qemu: watchdog fired]"

@dataclass(frozen=True)
class BootReport:
    ok: bool
    verdict: str
    console: str
    seconds: float


@dataclass(frozen=True)
class Machine:
    """A box under qemu: its disk and firmware variables persist across power cycles."""

    disk: Path
    workdir: Path
    stick: Path | None = None
    memory_mb: int = 512
    write_bytes_per_s: int | None = None  # throttles the disk, so that a power cut lands mid-write

    def power_on(self, script: str, *, timeout_s: float, cut_power_on: str | None = None,
                 cut_delay_s: float = 0.0, snapshot: bool = False) -> str:
        """Boot once, run `script` in the guest after its boot scripts; return the console."""
        qemu = require_tool("qemu-system-x86_64")
        for firmware in (OVMF_CODE, OVMF_VARS):
            if not firmware.is_file():
                raise ImageError(f"{firmware}: missing; install it with `apt-get install ovmf`")
        variables = self.workdir / "OVMF_VARS.fd"
        if not variables.exists():
            shutil.copyfile(OVMF_VARS, variables)
        script_file = self.workdir / "script.sh"
        script_file.write_text(script)
        qmp = self.workdir / "qmp.sock"
        qmp.unlink(missing_ok=True)
        argv = [qemu, "-nographic", "-no-reboot", "-nic", "none", "-m", str(self.memory_mb), "-accel", "tcg",
                "-machine", "q35", "-smp", "1", "-device", "i6300esb", "-action", "watchdog=reset",
                "-qmp", f"unix:{qmp},server=on,wait=off",
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
                "-drive", f"file={self.disk},format=raw,if=virtio" + (",snapshot=on" if snapshot else "")
                + (f",throttling.bps-write={self.write_bytes_per_s}" if self.write_bytes_per_s else ""),
                "-fw_cfg", f"name=opt/orbox/script,file={script_file}"]
        if self.stick is not None:
            argv += ["-drive", f"file={self.stick},format=raw,if=virtio,readonly=on"]
        return _run(argv, qmp, timeout_s, cut_power_on, cut_delay_s)


def _run(argv: list[str], qmp: Path, timeout_s: float, cut_power_on: str | None, cut_delay_s: float) -> str:
    """Run qemu until the guest powers off or reboots, or kill it `cut_delay_s` after the `cut_power_on` line.

    The console keeps being read until the kill, so it shows how far the guest got.
    """
    console: list[str] = []
    killed_by: list[str] = []
    watchdog_events: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True, errors="replace") as process:
        events = threading.Thread(target=_watchdog_events, args=(qmp, process, watchdog_events), daemon=True)
        events.start()

        def kill(reason: str) -> None:
            killed_by.append(reason)
            process.kill()

        timeout = threading.Timer(timeout_s, kill, ["timeout"])
        cut = threading.Timer(cut_delay_s, kill, ["power cut"])
        timeout.start()
        try:
            for line in process.stdout or ():
                console.append(line)
                if cut_power_on is not None and cut_power_on in line and not cut.is_alive():
                    cut.start()
            process.wait()
        finally:
            timeout.cancel()
            cut.cancel()
    events.join(5)
    if watchdog_events:
        console.append(f"\n{WATCHDOG_FIRED} action={watchdog_events[0]}\n")
    if killed_by[:1] == ["timeout"]:
        raise ImageError(f"qemu still running after {timeout_s:.0f} s; console tail: {''.join(console)[-1500:]}")
    if killed_by:
        console.append("\n[orbox test: power cut]\n")
    return "".join(console)


def _watchdog_events(qmp: Path, process: subprocess.Popen, found: list[str]) -> None:
    """Collect the actions of qemu's WATCHDOG events from its QMP socket until qemu exits."""
    with socket.socket(socket.AF_UNIX) as sock:
        while process.poll() is None:
            try:
                sock.connect(str(qmp))
                break
            except OSError:
                time.sleep(0.05)
        else:
            return
        try:
            with sock.makefile("rw") as stream:
                stream.readline()  # the greeting
                stream.write('{"execute": "qmp_capabilities"}\n')
                stream.flush()
                for line in stream:
                    message = json.loads(line)
                    if message.get("event") == "WATCHDOG":
                        found.append(message["data"]["action"])
        except (OSError, ValueError):  # qemu killed mid-message (a power cut): nothing more to read
            return


def boot_test(disk: Path, workdir: Path, *, timeout_s: float = 180.0) -> BootReport:
    """Boot `disk` (left unchanged: qemu writes to a snapshot) and parse the console for the self-check line."""
    started = time.monotonic()
    console = Machine(disk, workdir).power_on("poweroff -f\n", timeout_s=timeout_s, snapshot=True)
    return BootReport(*parse_console(console), console=console, seconds=time.monotonic() - started)


def parse_console(console: str) -> tuple[bool, str]:
    """(passed, verdict line): passed only with an OK self-check line and no FAIL line anywhere."""
    verdicts = SELF_CHECK.findall(console)
    failures = [detail for status, detail in verdicts if status == "FAIL"]
    boot_failure = re.search(r"orbox boot: FAIL[^\r\n]*|Kernel panic[^\r\n]*", console)
    if failures:
        return False, f"orbox self-check: FAIL{failures[0]}"
    if boot_failure:
        return False, boot_failure.group(0)
    if not verdicts:
        return False, "no self-check line on the console"
    return True, f"orbox self-check: OK{verdicts[0][1]}"
