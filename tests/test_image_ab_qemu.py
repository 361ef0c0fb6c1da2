"""A/B updates for real, in qemu: OVMF, GRUB's RAUC scheme, the slot's kernel, `rauc service`, mark-good.

One disk, five power cycles, each read by its console and by the grubenv on the disk afterwards.
Bundles sit on a second disk that stands in for the USB stick. What it shows (issue 19):
a wrong-compatible and a tampered bundle are refused and slot B stays as it was; v2 installs to B,
boots and is marked good; a v3 whose self-check fails boots once, marks itself bad, and GRUB falls
back to B; power cut in the middle of writing slot A still boots B. The boot watchdog is fed until
mark-good and then released, without ever firing.

The slow variants (`-m qemu_slow`, not in the default run): a slot whose kernel panics, and one whose
kernel hangs until the emulated hardware watchdog resets it, each fall back after their tries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from image_data.fixtures import build_for_test
from image_data.helpers import MODEL_MARKER

from image_build.qemu import WATCHDOG_FIRED, Machine
from image_build.rauc_bundle import signer_from_prefix, write_bundle

pytestmark = pytest.mark.xdist_group("image_ab")

ENV = "/boot/efi/EFI/BOOT/grubenv"
STICK = "mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick\n"
BOOT_LINE = re.compile(r"orbox grub: booting slot ([AB]) ")


def _releases(inputs: dict[str, Path], root: Path) -> None:
    """v1 (factory), v2, v3; a v3 with a flipped model byte; a v2 for another compatible; a tampered v2."""
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        build_for_test(inputs, root / version, version=version)
    signer, stick = signer_from_prefix(inputs["pki"]), root / "stick"
    stick.mkdir()
    for name in ("2.0.0", "3.0.0"):
        shutil.copyfile(root / name / "update.raucb", stick / f"v{name[0]}.raucb")
    work = root / "v3-bad"
    work.mkdir()
    rootfs = bytearray((root / "3.0.0" / "rootfs.ext4").read_bytes())
    rootfs[rootfs.find(MODEL_MARKER) + 3] ^= 0x01
    (work / "rootfs.ext4").write_bytes(bytes(rootfs))
    write_bundle(stick / "v3-bad.raucb", signer=signer, compatible="orbox-dev", version="3.0.0",
                 image=work / "rootfs.ext4", extras=[], meta={"profile": "dev", "version": "3.0.0",
                                                              "min-version": "0"}, workdir=work)
    other = root / "other"
    other.mkdir()
    write_bundle(stick / "other.raucb", signer=signer, compatible="orbox-mini-avx2", version="2.0.0",
                 image=root / "2.0.0" / "rootfs.ext4", extras=[],
                 meta={"profile": "mini-avx2", "version": "2.0.0", "min-version": "0"}, workdir=other)
    tampered = bytearray((stick / "v2.raucb").read_bytes())
    tampered[len(tampered) // 3] ^= 0x10  # inside the squashfs: only the verity hash tree notices
    (stick / "tampered.raucb").write_bytes(bytes(tampered))
    subprocess.run(["/usr/sbin/mkfs.ext4", "-q", "-d", str(stick), str(root / "stick.img"), "256M"], check=True)


@pytest.fixture(scope="module")
def releases(inputs, build_once) -> Path:
    return build_once("image-ab-releases", lambda root: _releases(inputs, root))


def _grubenv(disk: Path) -> dict[str, str]:
    """The grubenv file as the FAT says it is now (grub-editenv replaces it; stale copies stay on disk)."""
    block = subprocess.run(["mtype", "-i", f"{disk}@@1M", "::/EFI/BOOT/grubenv"], capture_output=True, text=True,
                           check=True).stdout  # the ESP starts at 1 MiB (genimage align = 1M)
    return dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)


def _install(bundle: str) -> str:
    return f'rauc install /run/stick/{bundle}; echo "orbox test: install {bundle} rc=$?"\n'


def _booted(console: str) -> list[str]:
    return BOOT_LINE.findall(console)


class _Logged(Machine):
    """Keeps every power cycle's console next to the disk, for reading when an assertion fails."""

    def power_on(self, script: str, **kwargs) -> str:
        console = super().power_on(script, **kwargs)
        cycle = len(list(self.workdir.glob("console-*.txt"))) + 1
        (self.workdir / f"console-{cycle}.txt").write_text(console)
        return console


def test_a_b_updates_refusals_fallback_and_power_cut(releases, tmp_path):
    disk = tmp_path / "box.img"
    shutil.copyfile(releases / "1.0.0" / "disk.img", disk)
    box = _Logged(disk, tmp_path, stick=releases / "stick.img", write_bytes_per_s=8 << 20)
    print(f"consoles: {tmp_path}/console-*.txt")
    untouched = 'echo "orbox test: slot B sha256 $(sha256sum /dev/vda3 | cut -c1-64)"\n'

    # 1: the factory slot A refuses a bundle for another profile and a tampered one, then installs v2 to B.
    console = box.power_on(STICK + untouched + _install("other.raucb") + _install("tampered.raucb") + untouched
                           + _install("v2.raucb") + "poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["A"] and "orbox self-check: OK profile=dev version=1.0.0" in console
    assert "orbox watchdog: feeding /dev/watchdog0" in console and "orbox mark-good: boot watchdog released" in console
    assert "orbox test: install other.raucb rc=1" in console and "orbox test: install tampered.raucb rc=1" in console
    assert "REFUSED bundle is for profile 'mini-avx2', this box is 'dev'" in console
    assert "REFUSED rootfs.ext4 fails its dm-verity check" in console
    sums = re.findall(r"orbox test: slot B sha256 ([0-9a-f]{64})", console)
    assert len(sums) == 2 and sums[0] == sums[1], "a refused bundle must not touch the other slot"
    assert "orbox test: install v2.raucb rc=0" in console
    assert {"ORDER": "B A", "B_OK": "1", "B_TRY": "0", "A_OK": "1"}.items() <= _grubenv(disk).items()

    # 2: v2 boots from B and is marked good; v3 (self-check will fail) goes to A.
    console = box.power_on(STICK + _install("v3-bad.raucb") + "poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["B"] and "orbox self-check: OK profile=dev version=2.0.0" in console
    assert "marked slot rootfs.1 as good" in console and "orbox test: install v3-bad.raucb rc=0" in console
    assert _grubenv(disk)["ORDER"] == "A B"

    # 3: v3 boots once, fails its self-check, marks itself bad and reboots (qemu exits on reboot).
    console = box.power_on("poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["A"] and "orbox self-check: FAIL" in console
    assert "marked slot rootfs.1 as good" not in console and "marked slot rootfs.0 as bad" in console
    assert _grubenv(disk)["A_OK"] == "0"

    # 4: GRUB falls back to B, which is confirmed again; a good v3 starts writing A and the power is cut.
    console = box.power_on(STICK + _install("v3.raucb") + "poweroff -f\n", timeout_s=300,
                           cut_power_on="writing data to device /dev/vda2", cut_delay_s=2.0)
    assert _booted(console) == ["B"] and "orbox self-check: OK profile=dev version=2.0.0" in console
    assert "[orbox test: power cut]" in console and "Updating slot rootfs.0 done" not in console, "cut mid-write"
    assert _grubenv(disk)["A_OK"] == "0", "RAUC marks the target slot bad before writing it"

    # 5: after the power cut, the good slot B still boots.
    console = box.power_on("poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["B"] and "orbox self-check: OK profile=dev version=2.0.0" in console
    assert "marked slot rootfs.1 as good" in console
    consoles = [path.read_text() for path in sorted(tmp_path.glob("console-*.txt"))]
    assert len(consoles) == 5 and not [c for c in consoles if WATCHDOG_FIRED in c], "released at mark-good, never fired"


# Slot B gets one more SysV script, before the self-check: its kernel crashes on every boot.
CRASHES = {
    "panic": 'echo "orbox test: kernel panic"\necho c > /proc/sysrq-trigger\n',  # panic=10 (cmdline) reboots
    "hang": 'echo "orbox test: kernel hang"\necho 0 > /proc/sys/kernel/panic\necho c > /proc/sysrq-trigger\n',
}


def _with_boot_script(rootfs: Path, out: Path, name: str, script: str) -> Path:
    """A copy of `rootfs` with one more /etc/init.d script (debugfs writes into the ext4 image)."""
    shutil.copyfile(rootfs, out)
    local, commands = out.with_name(name), out.with_name(f"{name}.debugfs")
    local.write_text(script)
    commands.write_text(f"cd /etc/init.d\nwrite {local} {name}\nsif {name} mode 0100755\n")
    subprocess.run(["/usr/sbin/debugfs", "-w", "-f", str(commands), str(out)], check=True, capture_output=True)
    return out


def _crash_releases(inputs: dict[str, Path], releases: Path, root: Path) -> None:
    signer, stick = signer_from_prefix(inputs["pki"]), root / "stick"
    stick.mkdir()
    for name, body in CRASHES.items():
        work = root / name
        work.mkdir()
        image = _with_boot_script(releases / "2.0.0" / "rootfs.ext4", work / "rootfs.ext4", "S40orbox-test-crash",
                                  "#!/bin/sh\n" + body)
        write_bundle(stick / f"{name}.raucb", signer=signer, compatible="orbox-dev", version="2.0.0", image=image,
                     extras=[], meta={"profile": "dev", "version": "2.0.0", "min-version": "0"}, workdir=work)
    subprocess.run(["/usr/sbin/mkfs.ext4", "-q", "-d", str(stick), str(root / "stick.img"), "128M"], check=True)


@pytest.fixture(scope="module")
def crash_releases(inputs, releases, build_once) -> Path:
    return build_once("image-ab-crashes", lambda root: _crash_releases(inputs, releases, root))


@pytest.mark.qemu_slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("name", "ended_by", "not_by"), [
    ("panic", "Rebooting in 10 seconds", WATCHDOG_FIRED),  # the kernel reboots itself (panic=10)
    ("hang", WATCHDOG_FIRED, "Rebooting in"),  # the kernel stops; only the hardware watchdog resets it
])
def test_a_slot_whose_kernel_panics_or_hangs_falls_back_after_its_tries(releases, crash_releases, tmp_path, name,
                                                                        ended_by, not_by):
    disk = tmp_path / "box.img"
    shutil.copyfile(releases / "1.0.0" / "disk.img", disk)
    box = _Logged(disk, tmp_path, stick=crash_releases / "stick.img")
    print(f"consoles: {tmp_path}/console-*.txt")
    console = box.power_on(STICK + _install(f"{name}.raucb") + "poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["A"] and f"orbox test: install {name}.raucb rc=0" in console
    for attempt in ("1", "2", "3"):
        console = box.power_on("poweroff -f\n", timeout_s=300)
        assert _booted(console) == ["B"] and f"orbox test: kernel {name}" in console, attempt
        assert "orbox watchdog: feeding /dev/watchdog0" in console and "orbox self-check" not in console
        assert ended_by in console and not_by not in console, attempt
        assert _grubenv(disk)["B_TRY"] == attempt
    console = box.power_on("poweroff -f\n", timeout_s=300)
    assert _booted(console) == ["A"] and "orbox self-check: OK profile=dev version=1.0.0" in console
