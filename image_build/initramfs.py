"""The initrd each slot carries: busybox, the block, filesystem and device-mapper modules, and an init
that mounts the slot GRUB chose (orbox.root=) read-only and hands over to its /sbin/init.

Deterministic: a newc cpio with fixed inodes, times and owners, modules in dependency order from
modules.dep. Used when the OS base brings no kernel of its own (the busybox demo base); the kernel
is then the build host's distribution kernel.
"""

from __future__ import annotations

import stat
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import require_tool
from primitives.atomic import atomic_writer

# Block and filesystems for the slots, the ESP and the stick; loop + dm-verity for RAUC's verity
# bundles; qemu_fw_cfg lets the qemu test hand the box its script (no physical box has fw_cfg).
_WANTED_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "squashfs", "vfat", "nls_cp437",
                   "nls_ascii", "nls_utf8", "loop", "dm_mod", "dm_verity", "qemu_fw_cfg", "i6300esb")

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
            raise ImageError(f"{module}: compressed kernel modules are not supported")
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
