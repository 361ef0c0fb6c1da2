"""Real RAUC 1.8 (`rauc service` and the `rauc` CLI) on the host, for the fleet client's RAUC boundary.

RAUC talks over the system D-Bus and reads the booted slot from /proc/cmdline (`rauc.slot=`). Here a
private dbus-daemon stands in for the system bus and each "boot" starts `rauc service` in a user and
mount namespace whose /proc/cmdline names the slot GRUB would have picked. Slots are plain files; the
bootloader is RAUC's `custom` backend, a script that keeps the same ORDER / <slot>_OK / <slot>_TRY
variables as the image's grub.cfg, with RAUC's GRUB rules (set-primary: first in ORDER, OK=1, TRY=0;
good means OK=1 and TRY=0). Writing a slot is not possible here (no dm-verity in the container); that
leg is the qemu test's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

BACKEND = r"""#!/bin/sh
# RAUC custom bootloader backend over a grubenv-like file ($ENV): RAUC's GRUB rules.
ENV="$(dirname "$0")/grubenv"
. "$ENV"
get() { eval "echo \$$1"; }
save() { printf 'ORDER="%s"\nA_OK=%s\nA_TRY=%s\nB_OK=%s\nB_TRY=%s\n' \
    "$ORDER" "$A_OK" "$A_TRY" "$B_OK" "$B_TRY" > "$ENV"; }
case "$1" in
  get-primary) for s in $ORDER; do [ "$(get ${s}_OK)" = 1 ] && echo "$s" && exit 0; done; exit 1 ;;
  set-primary) rest=""; for s in $ORDER; do [ "$s" != "$2" ] && rest="$rest $s"; done
               ORDER="$2$rest"; eval "${2}_OK=1; ${2}_TRY=0"; save ;;
  get-state) [ "$(get ${2}_OK)" = 1 ] && [ "$(get ${2}_TRY)" = 0 ] && echo good || echo bad ;;
  set-state) if [ "$3" = good ]; then eval "${2}_OK=1; ${2}_TRY=0"; else eval "${2}_OK=0"; fi; save ;;
  *) exit 1 ;;
esac
"""

BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>unix:path={socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/>
<allow user="*"/></policy></busconfig>
"""


class RealRauc:
    """Start with `with RealRauc(root, keyring) as rauc:`; `rauc.env` is what a `rauc` client process needs."""

    def __init__(self, root: Path, keyring: Path) -> None:
        self.root = root
        (root / "slot-a.img").write_bytes(b"\0" * 65536)
        (root / "slot-b.img").write_bytes(b"\0" * 65536)
        (root / "backend").write_text(BACKEND)
        (root / "backend").chmod(0o755)
        self.write_env(ORDER="A B", A_OK=1, A_TRY=0, B_OK=0, B_TRY=0)
        self.conf = root / "system.conf"
        self.conf.write_text(
            f"[system]\ncompatible=orbox-dev\nbootloader=custom\nbundle-formats=-plain\n"
            f"data-directory={root}/data\nmountprefix={root}/mnt\n\n[keyring]\npath={keyring}\n\n"
            f"[handlers]\nbootloader-custom-backend={root}/backend\n\n"
            f"[slot.rootfs.0]\ndevice={root}/slot-a.img\ntype=raw\nbootname=A\n\n"
            f"[slot.rootfs.1]\ndevice={root}/slot-b.img\ntype=raw\nbootname=B\n")
        (root / "bus.conf").write_text(BUS.format(socket=root / "bus"))
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={root / 'bus'}"}
        self._bus: subprocess.Popen | None = None
        self._service: subprocess.Popen | None = None

    def read_env(self) -> dict[str, str]:
        return dict(line.replace('"', "").split("=", 1) for line in (self.root / "grubenv").read_text().splitlines())

    def write_env(self, **values: object) -> None:
        text = "".join(f'{key}="{value}"\n' if key == "ORDER" else f"{key}={value}\n" for key, value in values.items())
        (self.root / "grubenv").write_text(text)

    def __enter__(self) -> RealRauc:
        self._bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={self.root / 'bus.conf'}"],
                                     stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_service()
        if self._bus is not None:
            self._bus.terminate()
            self._bus.wait(10)

    def power_cycle(self, tries: int = 3) -> str:
        """GRUB's choice and try count (as grub.cfg does it), then `rauc service` for that boot."""
        self._stop_service()
        env = self.read_env()
        booted = next((slot for slot in env["ORDER"].split() if env[f"{slot}_OK"] == "1"
                       and int(env[f"{slot}_TRY"]) < tries), None)
        if booted is None:
            booted = next(slot for slot in env["ORDER"].split() if env[f"{slot}_OK"] == "1")
        else:
            env[f"{booted}_TRY"] = str(int(env[f"{booted}_TRY"]) + 1)
        self.write_env(**env)
        (self.root / "cmdline").write_text(f"root=/dev/vda rauc.slot={booted}\n")
        self._service = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", f"mount --bind {self.root / 'cmdline'} /proc/cmdline && "
             f"exec rauc --conf={self.conf} service"], env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while subprocess.run(["rauc", "status"], env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self._service.poll() is not None:
                raise RuntimeError(f"rauc service did not come up (exit {self._service.poll()})")
            time.sleep(0.1)
        return booted

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """The `rauc` command as orbox-mark-good runs it on the box."""
        return subprocess.run(["rauc", *args], env=self.env, capture_output=True, text=True, timeout=60)

    def _stop_service(self) -> None:
        if self._service is not None and self._service.poll() is None:
            os.killpg(self._service.pid, signal.SIGTERM)
            self._service.wait(10)
        self._service = None
