"""A minimal OS base for the demo and the tests: busybox-static, an init that runs the
SysV scripts (so the orbox self-check runs at boot) and powers off when asked on the kernel
command line. A vendor passes its own rootfs tarball with --base instead.

The tarball is deterministic: sorted members, owner root, mtime = SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import io
import struct
import subprocess
import tarfile
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import require_tool
from primitives.atomic import atomic_writer

_RCS = b"""#!/bin/sh
# Demo base init: mount the kernel filesystems, run /etc/init.d/S??* start, power off on request.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
for script in /etc/init.d/S??*; do
    [ -x "$script" ] && "$script" start
done
if grep -q 'orbox.poweroff=1' /proc/cmdline; then
    poweroff -f
fi
"""

_INITTAB = b"""::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::ctrlaltdel:/bin/busybox reboot
::shutdown:/bin/busybox sync
"""

_DIRS = (
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "etc",
    "etc/init.d",
    "proc",
    "sys",
    "dev",
    "tmp",
    "run",
    "root",
    "var",
    "var/lib",
    "var/lib/dpkg",
    "var/lib/orbox",
    "data",
)


def build_demo_base(out: Path, epoch: int) -> Path:
    """Write a busybox-static rootfs tarball to `out` (atomically) and return it."""
    busybox = Path(require_tool("busybox"))
    binary = busybox.read_bytes()
    if _is_dynamic_elf(binary):
        raise ImageError(
            f"{busybox}: this busybox is dynamically linked; the demo base needs the static one "
            "(`apt-get install busybox-static`)"
        )
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def entry(name: str, kind: bytes, mode: int, data: bytes | None = None, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, epoch, link
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.size = len(data) if data is not None else 0
        members[name] = (info, data)

    for directory in _DIRS:
        entry(directory, tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755)
    entry("bin/busybox", tarfile.REGTYPE, 0o755, binary)
    for applet in applets.split():
        if applet != "bin/busybox" and applet.count("/") >= 1:
            entry(applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    entry("etc/init.d/rcS", tarfile.REGTYPE, 0o755, _RCS)
    entry("etc/inittab", tarfile.REGTYPE, 0o644, _INITTAB)
    entry("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
    entry("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    entry(
        "etc/os-release",
        tarfile.REGTYPE,
        0o644,
        b'NAME="orbox demo base"\nID=orbox-demo\nPRETTY_NAME="orbox demo base (busybox-static)"\n',
    )
    dpkg_status = _dpkg_status("busybox-static")
    if dpkg_status:
        entry("var/lib/dpkg/status", tarfile.REGTYPE, 0o644, dpkg_status)

    with (
        atomic_writer(out) as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name in sorted(members):
            info, data = members[name]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _dpkg_status(package: str) -> bytes | None:
    """The package's dpkg record, so the SBOM can name the OS package the busybox binary came from."""
    try:
        completed = subprocess.run(
            [
                "dpkg-query",
                "-W",
                "-f=Package: ${Package}\nStatus: ${Status}\nArchitecture: ${Architecture}\n"
                "Version: ${Version}\nSource: ${source:Package}\n\n",
                package,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return completed.stdout.encode() if completed.returncode == 0 else None


def _is_dynamic_elf(binary: bytes) -> bool:
    """True when the ELF file has a PT_INTERP program header (it needs a dynamic loader)."""
    if binary[:4] != b"\x7fELF" or binary[4] != 2:  # 64-bit ELF only
        return False
    endian = "<" if binary[5] == 1 else ">"
    (phoff,) = struct.unpack_from(endian + "Q", binary, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", binary, 0x36)
    return any(struct.unpack_from(endian + "I", binary, phoff + i * phentsize)[0] == 3 for i in range(phnum))
