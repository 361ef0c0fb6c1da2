"""A minimal OS base for the demo and the tests: busybox-static, an init that runs the
SysV scripts (so the orbox self-check and mark-good run at boot), and the update stack taken
from the build host's Debian packages with their shared libraries: rauc (+ its D-Bus policy),
dbus-daemon and grub-editenv. A vendor passes its own rootfs tarball with --base instead.

Under qemu only, rcS runs the script the test hands over through fw_cfg (opt/orbox/script);
physical boxes have no fw_cfg, so this is no way in on a box.

The tarball is deterministic: sorted members, owner root, mtime = SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import tarfile
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import require_tool
from primitives.atomic import atomic_writer

_RCS = b"""#!/bin/sh
# Demo base init: kernel filesystems, /etc/fstab, D-Bus and `rauc service`, /etc/init.d/S??* start,
# then (qemu only) the script handed over through fw_cfg.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -a
if [ -x /usr/bin/rauc ] && [ -x /usr/bin/dbus-daemon ]; then
    mkdir -p /run/dbus /data/rauc
    dbus-daemon --system
    rauc service &
    i=0
    until rauc status >/dev/null 2>&1 || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
fi
for script in /etc/init.d/S??*; do
    [ -x "$script" ] && "$script" start
done
script=/sys/firmware/qemu_fw_cfg/by_name/opt/orbox/script/raw
if [ -r "$script" ]; then
    sh "$script"
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
    "boot",
    "boot/efi",
    "mnt",
)
# The update stack: binaries copied from the build host with every shared library ldd names.
_HOST_BINARIES = ("/usr/bin/rauc", "/usr/bin/dbus-daemon", "/usr/bin/grub-editenv")
_HOST_DATA = ("/usr/share/dbus-1/system.conf", "/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf")
_HOST_PACKAGES = ("busybox-static", "rauc", "rauc-service", "dbus-daemon", "grub-common")


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
    entry("etc/passwd", tarfile.REGTYPE, 0o644,
          b"root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/nonexistent:/bin/false\n")
    entry("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nmessagebus:x:101:\n")
    entry("var/run", tarfile.SYMTYPE, 0o777, link="/run")  # where D-Bus clients look for the system bus
    entry("etc/machine-id", tarfile.REGTYPE, 0o444, b"6f7262786d616368696e652d69640a00\n")
    for path, mode in _host_files():
        for parent in Path(path).parents[:-1]:
            if parent.as_posix().lstrip("/") not in members:
                entry(parent.as_posix().lstrip("/"), tarfile.DIRTYPE, 0o755)
        entry(path.lstrip("/"), tarfile.REGTYPE, mode, Path(path).read_bytes())
    entry(
        "etc/os-release",
        tarfile.REGTYPE,
        0o644,
        b'NAME="orbox demo base"\nID=orbox-demo\nPRETTY_NAME="orbox demo base (busybox-static)"\n',
    )
    dpkg_status = _dpkg_status(_HOST_PACKAGES)
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


def _host_files() -> list[tuple[str, int]]:
    """(path, mode) of the update stack's binaries, their shared libraries and D-Bus config, sorted."""
    files = {path: 0o644 for path in _HOST_DATA}
    for binary in _HOST_BINARIES:
        files[require_tool(Path(binary).name)] = 0o755
        linked = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for match in re.finditer(r"(/\S+) \(0x", linked):
            files[match.group(1)] = 0o755
    for path in files:
        if not Path(path).is_file():
            raise ImageError(f"{path}: missing on the build host; `make sysdeps` installs the update stack")
    return sorted(files.items())


def _dpkg_status(packages: tuple[str, ...]) -> bytes | None:
    """The packages' dpkg records, so the SBOM can name the OS packages the host binaries came from."""
    try:
        completed = subprocess.run(
            [
                "dpkg-query",
                "-W",
                "-f=Package: ${Package}\nStatus: ${Status}\nArchitecture: ${Architecture}\n"
                "Version: ${Version}\nSource: ${source:Package}\n\n",
                *packages,
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
