"""External programs the build drives, each mapped to the Debian package that ships it.

A missing tool is the most common first-run failure, so it gets one clear message naming the
package to install instead of a FileNotFoundError traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from image_build.errors import ImageError, ToolMissing

DEBIAN_PACKAGES = {
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mksquashfs": "squashfs-tools",
    "genimage": "genimage",
    "bmaptool": "bmap-tools",
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "rauc": "rauc",
    "grub-mkimage": "grub-efi-amd64-bin",
    "grub-editenv": "grub-common",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
}

_SBIN_DIRS = ("/usr/sbin", "/sbin")  # mkfs.ext4 and debugfs live here, often outside a user's PATH


def require_tool(name: str) -> str:
    """Absolute path of `name`, or ToolMissing saying which apt package provides it."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which(name, path=search_path)
    if found is None:
        package = DEBIAN_PACKAGES.get(name, name)
        raise ToolMissing(
            f"required tool {name!r} not found on PATH; install it with "
            f"`apt-get install {package}` (or `make sysdeps`)"
        )
    return found


def run_tool(
    args: Sequence[str | os.PathLike],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    stdin: bytes | None = None,
) -> str:
    """Run a tool found with require_tool; a non-zero exit becomes an ImageError with its stderr."""
    argv = [require_tool(str(args[0])), *map(str, args[1:])]
    completed = subprocess.run(
        argv, input=stdin, capture_output=True, env={**os.environ, **(env or {})}, cwd=cwd, check=False
    )
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip() or completed.stdout.decode(
            errors="replace"
        )
        raise ImageError(
            f"{Path(argv[0]).name} failed (exit {completed.returncode}): {detail.strip()[-2000:]}"
        )
    return completed.stdout.decode(errors="replace")
