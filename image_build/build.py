"""`orbox image build`: spec in, reproducible rootfs, factory disk, .bmap, SBOM, record and RAUC bundle out.

All outputs are assembled in a scratch directory inside the output directory and renamed into
place at the end, so an interrupted build never leaves a half-written output behind.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_build.demo_base import build_demo_base
from image_build.disk import MIB, PARTITIONS, DiskLayout, make_disk
from image_build.errors import ImageError
from image_build.filesystem import make_ext4, make_squashfs, tree_size
from image_build.grub import grub_cfg, make_esp, partition_device
from image_build.initramfs import build_initramfs, find_kernel
from image_build.layer import KEYRING_PATH, ReleaseInfo, stage_orbox_layer
from image_build.rauc_bundle import BUNDLE_NAME, Signer, compatible_for, signer_from_prefix, write_bundle
from image_build.rauc_config import DATA_PARTITION, ESP_MOUNT, system_conf
from image_build.sbom import build_sbom, validate_sbom
from image_build.spec import ImageSpec, image_profile, resolve_source_date_epoch
from image_build.tools import require_tool
from image_build.tree import StagedTree, extract_base
from image_build.wheels import pin_wheels
from primitives.artifacts import ModelBundleError, file_digest, load_manifest
from primitives.atomic import fsync_dir
from primitives.signing import KeyFileError, canonical_json, verify_bundle

RECORD_SCHEMA = "orbox.build-record/1"
_PACKAGE_DIR = Path(__file__).resolve().parent  # SOURCE_DATE_EPOCH falls back to its git commit
_TOOLS = {
    "mkfs.ext4": ["-V"],
    "mksquashfs": ["-version"],
    "genimage": ["--version"],
    "bmaptool": ["--version"],
    "rauc": ["--version"],
    "grub-mkimage": ["--version"],
    "mkfs.vfat": ["--help"],
}


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    outputs: dict[str, Path]
    record: dict[str, Any]


def build_image(
    spec: ImageSpec,
    out_dir: Path,
    *,
    update_pki: str | os.PathLike | None,
    repo_dir: Path = _PACKAGE_DIR,
    step: Callable[[str], None] = lambda _: None,
) -> BuildResult:
    """Build every output of the spec into out_dir; raises ImageError with a clear message on bad input."""
    step("checking inputs")
    needed = ["mkfs.ext4", "debugfs", "genimage", "bmaptool", "grub-mkimage", "mkfs.vfat", "mcopy"] + (
        ["mksquashfs"] if spec.rootfs_type == "squashfs" else []
    ) + (["rauc", "mksquashfs"] if update_pki is not None else [])
    for tool in needed:
        require_tool(tool)
    epoch = resolve_source_date_epoch(spec, repo_dir)
    timestamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    profile = image_profile(spec.profile)
    arch = profile.cpu.arch
    bundle_manifest = _checked_bundle(spec)
    wheels = pin_wheels(spec.wheels)
    signer = signer_from_prefix(update_pki) if update_pki is not None else None
    for label, path in [
        ("base", spec.base),
        ("config", spec.config),
        *(("unit", unit) for unit in spec.units),
    ]:
        if path is not None and not Path(path).is_file():
            raise ImageError(f"spec field {label!r}: {path} is not a file")

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as scratch:
        work = Path(scratch)
        parts, staged_out = work / "parts", work / "out"
        parts.mkdir()
        staged_out.mkdir()
        tree = StagedTree(work / "root")
        tree.root.mkdir()

        step("staging the root filesystem")
        base = spec.base if spec.base is not None else build_demo_base(work / "demo-base.tar", epoch)
        extract_base(Path(base), tree)
        release = ReleaseInfo(spec.profile, arch, spec.version, spec.min_version)
        _stage_boot(tree, spec, work)
        layer_paths = stage_orbox_layer(
            tree, spec, release, wheels, spec.bundle, bundle_manifest,
            update_keyring=signer.keyring.read_bytes() if signer else None,
            rauc_system_conf=system_conf(profile=spec.profile, disk_device=spec.disk_device,
                                         rootfs_type=spec.rootfs_type, keyring=KEYRING_PATH),
            watchdog_timeout_s=profile.watchdog.timeout_s,
        )

        step("writing the SBOM")
        sbom = build_sbom(
            tree,
            profile=spec.profile,
            version=spec.version,
            timestamp=timestamp,
            serial_uuid=spec.derived_uuid("sbom-serial"),
            layer_paths=layer_paths,
        )
        problems = validate_sbom(sbom)
        if problems:
            raise ImageError(f"generated SBOM does not validate against CycloneDX 1.6: {problems[0]}")
        (staged_out / "sbom.cdx.json").write_bytes(sbom)

        step(f"making the {spec.rootfs_type} root filesystem")
        slot_size = _slot_size(spec, tree)
        rootfs = parts / f"rootfs.{spec.rootfs_type}"
        if spec.rootfs_type == "ext4":
            make_ext4(
                tree,
                rootfs,
                size_bytes=slot_size,
                fs_uuid=spec.derived_uuid("rootfs-uuid"),
                hash_seed=spec.derived_uuid("rootfs-hash-seed"),
                epoch=epoch,
                label="rootfs",
                workdir=work,
            )
        else:
            make_squashfs(tree, rootfs, epoch=epoch, workdir=work)
        if rootfs.stat().st_size > slot_size:
            raise ImageError(
                f"root filesystem is {rootfs.stat().st_size} bytes, larger than the "
                f"{slot_size}-byte slot; raise slot_size_mb in the spec"
            )

        step("making the factory disk and .bmap")
        data_image = _make_data_partition(spec, epoch, work, parts)
        cfg = grub_cfg(tries=spec.boot_tries, disk_device=spec.disk_device, rootfs_type=spec.rootfs_type,
                       cmdline=spec.kernel_cmdline)
        esp = make_esp(parts / "esp.vfat", cfg=cfg, size_mib=spec.esp_size_mb,
                       volume_id=spec.derived_uuid("esp-volume-id")[:8], epoch=epoch, workdir=work)
        layout = DiskLayout(
            esp,
            rootfs,
            data_image,
            slot_size,
            spec.derived_uuid("disk"),
            {name: spec.derived_uuid(f"partition/{name}") for name in PARTITIONS},
        )
        make_disk(layout, staged_out, work)
        shutil.move(rootfs, staged_out / rootfs.name)

        record = _record(spec, epoch, arch, wheels, staged_out, slot_size)
        (staged_out / "build-record.json").write_bytes(canonical_json(record))
        if signer is not None:
            step("signing the RAUC update bundle")
            _write_update_bundle(spec, signer, staged_out, rootfs.name, work)
        outputs = {}
        for produced in sorted(staged_out.iterdir()):
            os.replace(produced, out_dir / produced.name)
            outputs[produced.name] = out_dir / produced.name
        fsync_dir(out_dir)
    return BuildResult(out_dir, outputs, record)


def _checked_bundle(spec: ImageSpec) -> dict[str, Any]:
    try:
        problems = verify_bundle(spec.bundle)
        manifest = load_manifest(spec.bundle) if not problems else {}
    except (ModelBundleError, KeyFileError) as exc:
        problems = [str(exc)]
    if problems:
        raise ImageError(f"model bundle {spec.bundle} does not verify: {'; '.join(problems)}")
    if manifest["profile"] != spec.profile:
        raise ImageError(
            f"model bundle {spec.bundle} is for profile {manifest['profile']!r}, "
            f"the image is for {spec.profile!r}"
        )
    return manifest


def _write_update_bundle(spec: ImageSpec, signer: Signer, staged_out: Path, image_name: str, work: Path) -> None:
    """The bundle carries the SBOM and the build record, and pins both by sha256 in its metadata."""
    extras = [staged_out / "sbom.cdx.json", staged_out / "build-record.json"]
    meta = {
        "profile": spec.profile,
        "version": spec.version,
        "min-version": spec.min_version,
        "sbom-sha256": file_digest(extras[0]).sha256,
        "build-record-sha256": file_digest(extras[1]).sha256,
    }
    write_bundle(staged_out / BUNDLE_NAME, signer=signer, compatible=compatible_for(spec.profile),
                 version=spec.version, image=staged_out / image_name, extras=extras, meta=meta, workdir=work)


def _slot_size(spec: ImageSpec, tree: StagedTree) -> int:
    if spec.slot_size_mb is not None:
        return spec.slot_size_mb * MIB
    needed = tree_size(tree) * 5 // 4 + 8 * MIB  # ext4 metadata + journal headroom
    return -(-needed // (4 * MIB)) * 4 * MIB


def _stage_boot(tree: StagedTree, spec: ImageSpec, work: Path) -> None:
    """Each slot carries its own kernel and initrd; a base without /boot/vmlinuz gets the host's kernel.

    The ESP is mounted sync: RAUC marks the target slot bad in the grubenv (grub-editenv) before
    writing it, and that mark must be on the disk before the first slot byte is, or a power cut
    could leave a half-written slot marked OK.
    """
    if tree.path("/boot/vmlinuz").exists() and tree.path("/boot/initrd.img").exists():
        return
    kernel, modules = find_kernel()
    tree.add_file("/boot/vmlinuz", kernel)
    tree.add_file("/boot/initrd.img", build_initramfs(work / "initrd.img", modules))
    for mount_point in ("/boot/efi", "/data"):
        tree.mkdir(mount_point)
    if not tree.path("/etc/fstab").exists():
        tree.add_bytes("/etc/fstab", (
            f"{partition_device(spec.disk_device, 1)} {ESP_MOUNT} vfat sync,dirsync 0 0\n"
            f"{partition_device(spec.disk_device, DATA_PARTITION)} /data ext4 defaults 0 0\n").encode())


def _make_data_partition(spec: ImageSpec, epoch: int, work: Path, parts: Path) -> Path:
    """The data partition: RAUC's status (data-directory) survives slot switches here."""
    tree = StagedTree(work / "data-root")
    tree.root.mkdir()
    tree.mkdir("/rauc")
    data_image = parts / "data.ext4"
    data_dir = work / "data-fs"
    data_dir.mkdir()
    make_ext4(
        tree,
        data_image,
        size_bytes=spec.data_size_mb * MIB,
        fs_uuid=spec.derived_uuid("data-uuid"),
        hash_seed=spec.derived_uuid("data-hash-seed"),
        epoch=epoch,
        label="data",
        workdir=data_dir,
    )
    return data_image


def _record(spec: ImageSpec, epoch: int, arch: str, wheels: list, staged_out: Path, slot_size: int) -> dict:
    return {
        "schema": RECORD_SCHEMA,
        "profile": spec.profile,
        "arch": arch,
        "version": spec.version,
        "min_version": spec.min_version,
        "source_date_epoch": epoch,
        "seed": spec.effective_seed,
        "rootfs_type": spec.rootfs_type,
        "slot_size": slot_size,
        "inputs": {
            "base": file_digest(spec.base).as_dict() | {"path": str(spec.base)}
            if spec.base
            else "demo-busybox",
            "bundle_manifest": file_digest(Path(spec.bundle) / "manifest.json").as_dict(),
            "wheels": [
                {"file": w.filename, "name": w.name, "version": w.version, "sha256": w.sha256, "size": w.size}
                for w in wheels
            ],
        },
        "outputs": {p.name: file_digest(p).as_dict() for p in sorted(staged_out.iterdir())},
        "tools": {tool: _tool_version(tool, args) for tool, args in sorted(_TOOLS.items())},
    }


def _tool_version(tool: str, args: list[str]) -> str:
    try:
        completed = subprocess.run([require_tool(tool), *args], capture_output=True, text=True, check=False)
    except ImageError:
        return "not installed"
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"
