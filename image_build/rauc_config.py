"""/etc/rauc/system.conf for the image, generated from the profile and the disk layout.

RAUC refuses a bundle whose compatible is not this box's (`orbox-<profile>`) or that does not chain
to the keyring; plain bundles are refused outright (only verity bundles are accepted). RAUC 1.8 has
no version policy of its own, so the pre-install handler enforces it (no downgrade unless forced,
the bundle's minimum installed version, the profile). Mount points and RAUC's status live under
/run and /data because the root filesystem is mounted read-only.
"""

from __future__ import annotations

from image_build.grub import GRUB_DIR, ROOT_PARTITIONS, partition_device
from image_build.rauc_bundle import SLOT_CLASS, compatible_for

ESP_MOUNT = "/boot/efi"
DATA_PARTITION = 4
PRE_INSTALL_HANDLER = "/usr/libexec/orbox/rauc-pre-install"
SYSTEM_CONF_PATH = "/etc/rauc/system.conf"


def system_conf(*, profile: str, disk_device: str, rootfs_type: str, keyring: str) -> str:
    slot_type = "ext4" if rootfs_type == "ext4" else "raw"
    slots = "".join(
        f"\n[slot.{SLOT_CLASS}.{index}]\ndevice={partition_device(disk_device, part)}\ntype={slot_type}\n"
        f"bootname={bootname}\n"
        for index, (bootname, part) in enumerate(ROOT_PARTITIONS.items()))
    return (
        f"[system]\ncompatible={compatible_for(profile)}\nbootloader=grub\n"
        f"grubenv={ESP_MOUNT}/{GRUB_DIR}/grubenv\nbundle-formats=-plain\nmountprefix=/run/rauc\n"
        f"data-directory=/data/rauc\n\n[keyring]\npath={keyring}\n\n"
        f"[handlers]\npre-install={PRE_INSTALL_HANDLER}\n{slots}"
    )
