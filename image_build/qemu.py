"""Boot test: qemu-system-x86_64 boots the factory disk under software emulation (no KVM here).

qemu stands in for the firmware: it loads the distribution kernel and a tiny initramfs (busybox
plus the virtio and filesystem modules, resolved from modules.dep) that mounts slot A of the
disk read-only and switches to its init. The image's self-check prints one line; qemu exits 0
whether or not that line says OK, so the verdict comes from parsing the console.
"""

from __future__ import annotations

import re
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import require_tool
from primitives.atomic import atomic_writer

SELF_CHECK = re.compile(r"orbox self-check: (OK|FAIL)\b([^\r\n]*)")
_WANTED_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "squashfs")

_INIT = b"""#!/bin/sh
# orbox boot stage: load block and filesystem drivers, mount the slot read-only, hand over.
export PATH=/bin
busybox mount -t devtmpfs dev /dev
busybox mount -t proc proc /proc
for module in $(busybox cat /etc/modules.order); do
    busybox insmod /lib/modules/$module.ko || echo "orbox boot: insmod $module failed"
done
root=/dev/vda1
fstype=ext4
for arg in $(busybox cat /proc/cmdline); do
    case $arg in
        orbox.root=*) root=${arg#orbox.root=} ;;
        orbox.rootfstype=*) fstype=${arg#orbox.rootfstype=} ;;
    esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do busybox sleep 0.1; i=$((i + 1)); done
if ! busybox mount -t "$fstype" -o ro "$root" /newroot; then
    echo "orbox boot: FAIL cannot mount $root as $fstype"
    busybox poweroff -f
fi
busybox mount --move /dev /newroot/dev
busybox umount /proc
exec busybox switch_root /newroot /sbin/init
"""


@dataclass(frozen=True)
class BootReport:
    ok: bool
    verdict: str
    console: str
    seconds: float


def find_kernel(
    boot_dir: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")
) -> tuple[Path, Path]:
    """The newest /boot/vmlinuz-* that has a matching module tree; (kernel, modules dir)."""
    for kernel in sorted(boot_dir.glob("vmlinuz-*"), reverse=True):
        modules = modules_root / kernel.name.removeprefix("vmlinuz-")
        if (modules / "modules.dep").is_file():
            return kernel, modules
    raise ImageError(
        f"no kernel with modules found ({boot_dir}/vmlinuz-* and {modules_root}/<release>/); "
        "install one with `apt-get install linux-image-amd64`"
    )


def module_load_order(modules_dir: Path, wanted: tuple[str, ...] = _WANTED_MODULES) -> list[Path]:
    """Module files in an order insmod accepts (dependencies first), from modules.dep."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, requires = line.partition(":")
        deps[module] = requires.split()
    by_name = {Path(path).name.split(".ko")[0].replace("-", "_"): path for path in deps}
    builtin = (
        (modules_dir / "modules.builtin").read_text() if (modules_dir / "modules.builtin").is_file() else ""
    )
    ordered: list[str] = []

    def visit(path: str) -> None:
        for dependency in reversed(deps.get(path, [])):
            visit(dependency)
        if path not in ordered:
            ordered.append(path)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
        elif f"/{name}.ko" not in builtin:
            raise ImageError(f"{modules_dir}: kernel module {name!r} is neither built in nor in modules.dep")
    return [modules_dir / path for path in ordered]


def build_initramfs(out: Path, modules_dir: Path) -> Path:
    """A newc cpio with busybox, /init and the modules; deterministic (fixed inodes, times, owners)."""
    busybox = Path(require_tool("busybox")).read_bytes()
    modules = module_load_order(modules_dir)
    for module in modules:
        if module.suffix != ".ko":
            raise ImageError(f"{module}: compressed kernel modules are not supported by the boot test")
    entries: list[tuple[str, int, bytes, int]] = [
        (d, 0o040755, b"", 0) for d in ("bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc")
    ]
    entries += [
        ("dev/console", 0o020600, b"", (5 << 8) | 1),
        ("bin/busybox", 0o100755, busybox, 0),
        ("bin/sh", 0o120777, b"busybox", 0),
        ("init", 0o100755, _INIT, 0),
        ("etc/modules.order", 0o100644, "".join(m.stem + "\n" for m in modules).encode(), 0),
    ]
    entries += [(f"lib/modules/{m.stem}.ko", 0o100644, m.read_bytes(), 0) for m in modules]
    with atomic_writer(out) as handle:
        for inode, (name, mode, data, rdev) in enumerate(sorted(entries), start=1):
            handle.write(_cpio_entry(name, mode, data, inode, rdev))
        handle.write(_cpio_entry("TRAILER!!!", 0, b"", 0, 0))
    return out


def _cpio_entry(name: str, mode: int, data: bytes, inode: int, rdev: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (
        inode,
        mode,
        0,
        0,
        2 if stat.S_ISDIR(mode) else 1,
        0,
        len(data),
        0,
        0,
        rdev >> 8,
        rdev & 0xFF,
        len(encoded),
        0,
    )
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    name_part = header + encoded
    name_part += b"\0" * (-len(name_part) % 4)
    return name_part + data + b"\0" * (-len(data) % 4)


def boot_test(
    disk: Path,
    workdir: Path,
    *,
    rootfs_type: str = "ext4",
    timeout_s: float = 120.0,
    kernel: Path | None = None,
    modules_dir: Path | None = None,
) -> BootReport:
    """Boot `disk` (slot A) under TCG and parse the console for the self-check line."""
    qemu = require_tool("qemu-system-x86_64")
    if kernel is None or modules_dir is None:
        kernel, modules_dir = find_kernel()
    initramfs = build_initramfs(workdir / "orbox-boot.cpio", modules_dir)
    cmdline = (
        f"console=ttyS0 panic=-1 quiet orbox.root=/dev/vda1 orbox.rootfstype={rootfs_type} orbox.poweroff=1"
    )
    argv = [
        qemu,
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-m",
        "256",
        "-accel",
        "tcg",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initramfs),
        "-append",
        cmdline,
        "-drive",
        f"file={disk},format=raw,if=virtio,readonly=on",
    ]
    started = time.monotonic()
    try:
        completed = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        console = (exc.stdout or b"").decode(errors="replace")
        raise ImageError(
            f"qemu did not power off within {timeout_s:.0f} s; console tail: {console[-800:]}"
        ) from exc
    console = completed.stdout.decode(errors="replace") + completed.stderr.decode(errors="replace")
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
