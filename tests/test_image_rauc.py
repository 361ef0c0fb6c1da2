"""RAUC verity bundles on the host, in seconds: what `rauc info` and `rauc extract` refuse with the box's keyring.

`rauc info` checks the CMS signature and the manifest (which holds the verity root hash); `rauc extract`
also checks every payload byte against the hash tree, as the box's dm-verity does while installing.
`orbox image verify` runs both, so it must refuse every mutation below.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from image_data.helpers import write_rauc_bundle

from image_build.layer import ReleaseInfo
from image_build.rauc_bundle import UpdateBundleRejected, check_bundle, signer_from_prefix
from image_build.rauc_config import PRE_INSTALL_HANDLER
from image_build.tools import require_tool
from primitives.update_keys import generate_update_pki

IMAGE = random.Random(3).randbytes(20_000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    generate_update_pki(root / "vendor")
    generate_update_pki(root / "intruder")
    return {"vendor": root / "vendor", "intruder": root / "intruder", "root": root}


@pytest.fixture(scope="module")
def bundle(pki) -> bytes:
    return write_rauc_bundle(pki["root"] / "ok.raucb", signer_from_prefix(pki["vendor"]), image=IMAGE,
                             version="2.0.0").read_bytes()


def _keyring(pki, name: str = "vendor") -> Path:
    return signer_from_prefix(pki[name]).keyring


def _regions(data: bytes) -> dict[str, range]:
    """RAUC's verity layout: squashfs | hash tree | CMS signature (DER) | u64 signature size."""
    signature_size = struct.unpack(">Q", data[-8:])[0]
    signature_start = len(data) - 8 - signature_size
    signature = data[signature_start:len(data) - 8]
    manifest_at = signature_start + signature.index(b"[update]")
    manifest_end = signature_start + signature.index(b"filename=rootfs.ext4\n") + len(b"filename=rootfs.ext4\n")
    hash_tree_start = signature_start - 4096  # one hash block for a payload this small
    return {
        "squashfs superblock": range(0, 96),
        "squashfs data and tables": range(96, hash_tree_start),
        "verity hash tree": range(hash_tree_start, signature_start),
        "CMS header": range(signature_start, manifest_at),
        "signed manifest": range(manifest_at, manifest_end),
        "CMS certificates and signature": range(manifest_end, len(data) - 8),
        "signature size": range(len(data) - 8, len(data)),
    }


def _refused(path: Path, keyring: Path) -> bool:
    try:
        check_bundle(path, keyring)
    except UpdateBundleRejected:
        return True
    return False


def test_intact_bundle_passes_info_and_extract(tmp_path, pki, bundle):
    path = tmp_path / "ok.raucb"
    path.write_bytes(bundle)
    info = check_bundle(path, _keyring(pki))
    assert (info.compatible, info.version, info.files["rootfs.ext4"]) == ("orbox-dev", "2.0.0", len(IMAGE))
    assert info.meta == {"profile": "dev", "min-version": "0"}


def test_bit_flips_in_every_region_are_refused(tmp_path, pki, bundle):
    """Eight offsets in each region, a different bit each: every one refused, and the bundle verifies again."""
    path, keyring, rng = tmp_path / "flip.raucb", _keyring(pki), random.Random(5)
    path.write_bytes(bundle)
    regions = _regions(bundle)
    assert sum(len(r) for r in regions.values()) == len(bundle), "regions must tile the whole bundle"
    accepted = []
    with open(path, "r+b", buffering=0) as handle:
        for region, offsets in regions.items():
            for offset in sorted(rng.sample(offsets, min(8, len(offsets)))):
                bit = rng.randrange(8)
                os.pwrite(handle.fileno(), bytes([bundle[offset] ^ (1 << bit)]), offset)
                if not _refused(path, keyring):
                    accepted.append((region, offset, bit))
                os.pwrite(handle.fileno(), bundle[offset:offset + 1], offset)
    assert accepted == []
    assert not _refused(path, keyring), "the restored bundle must verify again"


def test_truncations_and_an_extension_are_refused(tmp_path, pki, bundle):
    path, keyring = tmp_path / "cut.raucb", _keyring(pki)
    path.write_bytes(bundle + b"\0")
    assert _refused(path, keyring), "one appended byte"
    cuts = sorted({0, 1, 4095, 4096, len(bundle) // 2, *(stop for stop in (r.stop for r in _regions(bundle).values())),
                   len(bundle) - 9, len(bundle) - 1})
    accepted = []
    for length in cuts:
        if length >= len(bundle):
            continue
        path.write_bytes(bundle[:length])
        if not _refused(path, keyring):
            accepted.append(length)
    assert accepted == []


def test_another_signer_and_another_keyring_are_refused(tmp_path, pki, bundle):
    foreign = write_rauc_bundle(tmp_path / "foreign.raucb", signer_from_prefix(pki["intruder"]), image=IMAGE,
                                version="2.0.0")
    with pytest.raises(UpdateBundleRejected, match=r"foreign.raucb: refused by `rauc info`"):
        check_bundle(foreign, _keyring(pki))
    path = tmp_path / "ok.raucb"
    path.write_bytes(bundle)
    with pytest.raises(UpdateBundleRejected, match=r"ok.raucb: refused by `rauc info`"):
        check_bundle(path, _keyring(pki, "intruder"))
    not_a_cert = tmp_path / "keyring.pem"
    not_a_cert.write_text("not a certificate\n")
    assert _refused(path, not_a_cert)


def _handler_root(tmp_path: Path, meta: str | None, *, allow_downgrade: bool = False) -> Path:
    """A chroot with the image's busybox, release.env of a dev box running 2.0.0, and a 'mounted bundle'."""
    root = tmp_path / "root"
    for directory in ("bin", "dev", "etc/orbox", "run/orbox", "bundle", "usr/libexec/orbox"):
        (root / directory).mkdir(parents=True)
    shutil.copyfile(require_tool("busybox"), root / "bin" / "busybox")
    os.chmod(root / "bin" / "busybox", 0o755)
    for applet in ("sh", "cat", "sed", "sort", "tail", "basename"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc/orbox/release.env").write_text(
        ReleaseInfo("dev", "x86_64", "2.0.0", "1.0.0").as_env())
    handler = root / PRE_INSTALL_HANDLER.lstrip("/")
    handler.write_bytes((resources.files("image_build") / "defaults" / "rauc-pre-install").read_bytes())
    os.chmod(handler, 0o755)
    (root / "bundle" / "rootfs.ext4").write_bytes(IMAGE)
    if meta is not None:
        (root / "bundle" / "meta.orbox.conf").write_text(meta)
    if allow_downgrade:
        (root / "run/orbox/allow-downgrade").touch()
    return root


def _run_handler(root: Path) -> tuple[int, str]:
    """Run the handler as RAUC does (RAUC_BUNDLE_MOUNT_POINT set); returns (exit status, what it said)."""
    result = subprocess.run(["unshare", "--map-root-user", f"--root={root}", PRE_INSTALL_HANDLER],
                            env={"PATH": "/bin", "RAUC_BUNDLE_MOUNT_POINT": "/bundle"},
                            capture_output=True, text=True, timeout=30)
    console = (root / "dev" / "console").read_text() if (root / "dev" / "console").exists() else ""
    return result.returncode, result.stderr + console


def _meta(version: str, min_version: str = "1.0.0", profile: str = "dev") -> str:
    return f"[meta.orbox]\nmin-version={min_version}\nprofile={profile}\nversion={version}\n"


@pytest.mark.parametrize(("meta", "allow_downgrade", "verdict"), [
    (_meta("3.0.0"), False, "OK 2.0.0 -> 3.0.0"),
    (_meta("10.0.0"), False, "OK 2.0.0 -> 10.0.0"),  # compared as numbers, not as text
    (_meta("2.0.0"), False, "REFUSED version 2.0.0 is not newer than the running 2.0.0"),
    (_meta("1.9.0"), False, "REFUSED version 1.9.0 is not newer than the running 2.0.0"),
    (_meta("1.9.0"), True, "OK 2.0.0 -> 1.9.0"),
    (_meta("3.0.0", min_version="2.1.0"), True, "REFUSED bundle needs at least 2.1.0 installed, this box runs 2.0.0"),
    (_meta("3.0.0", profile="mini-avx2"), False, "REFUSED bundle is for profile 'mini-avx2', this box is 'dev'"),
    (None, False, "REFUSED bundle has no meta.orbox.conf"),
])
def test_pre_install_handler_enforces_the_version_policy(tmp_path, meta, allow_downgrade, verdict):
    """RAUC 1.8 runs this handler before it marks or writes the target slot: a refusal here writes nothing."""
    status, said = _run_handler(_handler_root(tmp_path, meta, allow_downgrade=allow_downgrade))
    assert f"orbox pre-install: {verdict}" in said, said
    assert status == (0 if verdict.startswith("OK") else 1)


def test_pre_install_handler_refuses_a_payload_file_it_cannot_read(tmp_path):
    """dm-verity turns a tampered block into a read error; the handler reads every file before RAUC writes."""
    root = _handler_root(tmp_path, _meta("3.0.0"))
    (root / "bundle" / "sbom.cdx.json").mkdir()  # reading it fails, as a tampered block under dm-verity does
    status, said = _run_handler(root)
    assert status == 1 and "REFUSED sbom.cdx.json fails its dm-verity check" in said, said
