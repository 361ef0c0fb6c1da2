"""Shared builders for the image tests: model bundles and tiny RAUC bundles."""

from __future__ import annotations

import random
from pathlib import Path

from image_build.rauc_bundle import Signer, write_bundle
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

