"""Shared builders for the image tests: model bundles, tiny update bundles, directory snapshots."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from image_build.rauc_bundle import Signer, write_bundle
from image_build.update_bundle import PayloadFile, write_update_bundle
from primitives.signing import sign_bundle
from quantize.manifest import update_manifest

MODEL_MARKER = b"ORBOX-TEST-MODEL-MARKER-7f3a"


def make_artifact_bundle(bundle_dir: Path, key_path: Path, profile: str = "dev") -> Path:
    """A small signed model bundle in the producers' layout: llm/ and encoder/ sections."""
    rng = random.Random(8)
    (bundle_dir / "llm").mkdir(parents=True)
    (bundle_dir / "encoder").mkdir()
    (bundle_dir / "llm" / "tiny-q8_0.gguf").write_bytes(b"GGUF" + MODEL_MARKER + rng.randbytes(40_000))
    (bundle_dir / "encoder" / "tiny-int8.onnx").write_bytes(rng.randbytes(20_000))
    update_manifest(bundle_dir, profile, "llm", {"source": "tiny"},
                    {"llm/tiny-q8_0.gguf": {"kind": "gguf", "role": "llm", "quant_type": "q8_0"}})
    update_manifest(bundle_dir, profile, "encoder", {"source": "tiny"},
                    {"encoder/tiny-int8.onnx": {"kind": "onnx", "role": "embedding", "quant_type": "int8"}})
    sign_bundle(bundle_dir, key_path)
    return bundle_dir


def write_update(out: Path, key: Ed25519PrivateKey, *, image: bytes, version: str, profile: str = "dev",
                 min_version: str = "0", sbom: bytes = b'{"bomFormat": "CycloneDX"}\n') -> Path:
    """An update bundle whose slot image is `image` (the format does not care what the bytes are)."""
    work = out.parent / f".{out.name}.parts"
    work.mkdir(exist_ok=True)
    (work / "rootfs.ext4").write_bytes(image)
    (work / "sbom.cdx.json").write_bytes(sbom)
    fields = {"profile": profile, "arch": "x86_64", "version": version, "min_version": min_version,
              "created": "2024-01-01T00:00:00Z", "rootfs_type": "ext4", "artifacts": {}}
    write_update_bundle(out, fields, [PayloadFile("rootfs.ext4", "slot-image", work / "rootfs.ext4"),
                                      PayloadFile("sbom.cdx.json", "sbom", work / "sbom.cdx.json")], key)
    return out


def write_rauc_bundle(out: Path, signer: Signer, *, image: bytes, version: str, compatible: str = "orbox-dev",
                      meta: dict[str, str] | None = None) -> Path:
    """A RAUC verity bundle whose slot image is `image` (RAUC does not look inside it when bundling)."""
    work = out.parent / f".{out.name}.parts"
    work.mkdir()
    (work / "rootfs.ext4").write_bytes(image)
    (work / "sbom.cdx.json").write_bytes(b"{}\n")
    return write_bundle(out, signer=signer, compatible=compatible, version=version, image=work / "rootfs.ext4",
                        extras=[work / "sbom.cdx.json"], meta=meta or {"profile": "dev", "min-version": "0"},
                        workdir=work)


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file: equal snapshots mean nothing was written."""
    return {str(path.relative_to(directory)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}
