"""The factory disk: a GPT image made by genimage with esp, rootfs-a, rootfs-b and data, plus its .bmap.

The ESP holds GRUB, its slot-selection script and the grubenv (slot A good and first); slot A holds
the built root filesystem with its kernel and initrd; slot B is left empty (a hole, so the .bmap
lets bmaptool skip it when flashing); data holds RAUC's status. Disk and partition GUIDs come from
the spec, so the disk is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from image_build.tools import run_tool

MIB = 1 << 20
PARTITION_TYPE_LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"
PARTITION_TYPE_ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
PARTITIONS = ("esp", "rootfs-a", "rootfs-b", "data")  # numbered 1..4 in this order


@dataclass(frozen=True)
class DiskLayout:
    esp_image: Path
    rootfs_image: Path
    data_image: Path
    slot_size: int
    disk_uuid: str
    partition_uuids: dict[str, str]  # by PARTITIONS name


def genimage_config(layout: DiskLayout) -> str:
    slot_mib = layout.slot_size // MIB

    def partition(name: str, body: str, kind: str = PARTITION_TYPE_LINUX) -> str:
        return (
            f'  partition {name} {{\n    partition-type-uuid = "{kind}"\n'
            f'    partition-uuid = "{layout.partition_uuids[name]}"\n{body}  }}\n'
        )

    return (
        "image disk.img {\n"
        '  hdimage {\n    partition-table-type = "gpt"\n'
        f'    disk-uuid = "{layout.disk_uuid}"\n    align = 1M\n  }}\n'
        + partition("esp", f'    image = "{layout.esp_image.name}"\n    bootable = true\n', PARTITION_TYPE_ESP)
        + partition("rootfs-a", f'    image = "{layout.rootfs_image.name}"\n    size = {slot_mib}M\n')
        + partition("rootfs-b", f"    size = {slot_mib}M\n")
        + partition("data", f'    image = "{layout.data_image.name}"\n')
        + "}\n"
    )


def make_disk(layout: DiskLayout, out_dir: Path, workdir: Path) -> tuple[Path, Path]:
    """Run genimage and bmaptool; returns (disk.img, disk.bmap) inside out_dir."""
    config = workdir / "genimage.cfg"
    config.write_text(genimage_config(layout))
    for sub in ("genimage-tmp", "genimage-root"):
        (workdir / sub).mkdir()
    run_tool(
        [
            "genimage",
            "--config",
            config,
            "--inputpath",
            layout.rootfs_image.parent,
            "--outputpath",
            out_dir,
            "--tmppath",
            workdir / "genimage-tmp",
            "--rootpath",
            workdir / "genimage-root",
        ],
        env={"TZ": "UTC"},
    )
    disk, bmap = out_dir / "disk.img", out_dir / "disk.bmap"
    bmap.unlink(missing_ok=True)
    run_tool(["bmaptool", "create", "-o", bmap, disk])
    return disk, bmap
