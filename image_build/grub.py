"""The EFI system partition: GRUB built with grub-mkimage, RAUC's GRUB boot-selection script, a grubenv.

RAUC's GRUB backend owns four variables per box: ORDER (slots by priority) and, per slot,
<slot>_OK (RAUC sets 1 on install and mark-good, 0 on mark-bad) and <slot>_TRY. RAUC's documented
script allows one unconfirmed boot (TRY is a flag); here TRY counts boots up to `tries`, so a slot
that hangs before its self-check gets `tries` chances before GRUB moves on. Every confirmed boot
(`rauc status mark-good`) sets TRY back to 0. If no slot is left, GRUB boots the first OK slot
again instead of stopping: an operating room needs a box that comes up.

GRUB and the FAT image are byte-identical for the same inputs (grub-mkimage writes no time;
mkfs.vfat --invariant with a volume id from the spec; mcopy -m keeps the staged files' fixed mtimes).
"""

from __future__ import annotations

import os
from pathlib import Path

from image_build.tools import run_tool

SLOTS = ("A", "B")
ROOT_PARTITIONS = {"A": 2, "B": 3}  # GPT: 1 ESP, 2 rootfs-a, 3 rootfs-b, 4 data
GRUB_DIR = "EFI/BOOT"
GRUBENV_SIZE = 1024
_MODULES = ("part_gpt", "fat", "ext2", "squash4", "normal", "linux", "echo", "test", "loadenv", "regexp",
            "configfile", "reboot", "halt", "sleep")


def grub_cfg(*, tries: int, disk_device: str, rootfs_type: str, cmdline: str) -> str:
    """RAUC's GRUB scheme with `tries` boots per unconfirmed slot; the kernel and initrd come from the slot."""
    if not 1 <= tries <= 9:
        raise ValueError(f"boot tries must be 1..9, found {tries}")
    select = "".join(
        f'    if [ "$SLOT" = "{slot}" ]; then OK=${slot}_OK; TRY=${slot}_TRY; fi\n' for slot in SLOTS)
    count = "".join(
        f'if [ "$SELECTED" = "{slot}" ]; then\n'
        + "".join(f'    {"if" if n == 0 else "elif"} [ "${slot}_TRY" = "{n}" ]; then {slot}_TRY={n + 1}\n'
                  for n in range(tries))
        + "    fi\nfi\n"
        for slot in SLOTS)
    roots = "".join(
        f'if [ "$SELECTED" = "{slot}" ]; then set root=($disk,gpt{part}); '
        f"ROOTDEV={partition_device(disk_device, part)}; fi\n"
        for slot, part in ROOT_PARTITIONS.items())
    return f"""# orbox: RAUC's GRUB slot selection (ORDER, <slot>_OK, <slot>_TRY), {tries} tries per unconfirmed slot.
set timeout=0
regexp --set=1:disk '^\\(([^,]+),' "$prefix"
set envfile=$prefix/grubenv
set ORDER="A B"
set A_OK=0
set B_OK=0
set A_TRY=0
set B_TRY=0
load_env --file $envfile
set SELECTED=""
for SLOT in $ORDER; do
{select}    if [ "$OK" = "1" -a "$TRY" -lt {tries} ]; then
        SELECTED=$SLOT
        break
    fi
done
if [ -z "$SELECTED" ]; then
    echo "orbox grub: no slot left to try; booting the first OK slot again"
    for SLOT in $ORDER; do
{select}        if [ "$OK" = "1" ]; then SELECTED=$SLOT; break; fi
    done
fi
if [ -z "$SELECTED" ]; then SELECTED=A; fi
{count}save_env --file $envfile A_TRY B_TRY
echo "orbox grub: booting slot $SELECTED (ORDER=$ORDER A_OK=$A_OK A_TRY=$A_TRY B_OK=$B_OK B_TRY=$B_TRY)"
{roots}linux /boot/vmlinuz orbox.root=$ROOTDEV orbox.rootfstype={rootfs_type} rauc.slot=$SELECTED {cmdline}
initrd /boot/initrd.img
boot
"""


def partition_device(disk_device: str, number: int) -> str:
    """/dev/vda + 2 -> /dev/vda2; /dev/nvme0n1 + 2 -> /dev/nvme0n1p2 (the kernel's naming)."""
    return f"{disk_device}{'p' if disk_device[-1].isdigit() else ''}{number}"


def grubenv(values: dict[str, str]) -> bytes:
    """GRUB's environment block: a header, KEY=VALUE lines, '#' padding to exactly 1024 bytes."""
    body = b"# GRUB Environment Block\n" + b"".join(f"{key}={value}\n".encode() for key, value in values.items())
    if len(body) > GRUBENV_SIZE:
        raise ValueError(f"grubenv holds {len(body)} bytes, the block is {GRUBENV_SIZE}")
    return body + b"#" * (GRUBENV_SIZE - len(body))


def factory_grubenv() -> bytes:
    """A freshly flashed box: slot A good and first, slot B empty."""
    return grubenv({"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"})


def make_esp(out: Path, *, cfg: str, size_mib: int, volume_id: str, epoch: int, workdir: Path) -> Path:
    """A FAT image with EFI/BOOT/BOOTX64.EFI (GRUB), grub.cfg and grubenv."""
    tree = workdir / "esp"
    boot_dir = tree / GRUB_DIR
    boot_dir.mkdir(parents=True)
    run_tool(["grub-mkimage", "-O", "x86_64-efi", "-p", f"/{GRUB_DIR}", "-o", boot_dir / "BOOTX64.EFI",
              *_MODULES])
    (boot_dir / "grub.cfg").write_text(cfg)
    (boot_dir / "grubenv").write_bytes(factory_grubenv())
    for path in [*sorted(tree.rglob("*")), tree]:
        os.utime(path, (epoch, epoch))
    out.unlink(missing_ok=True)
    env = {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC"}
    run_tool(["mkfs.vfat", "--invariant", "-i", volume_id, "-n", "ESP", "-C", out, str(size_mib * 1024)], env=env)
    run_tool(["mcopy", "-s", "-m", "-i", out, tree / "EFI", "::"], env=env)
    return out
