"""Model bundle manifests: each producer merges its section and artifacts into manifest.json.

`orbox quantize llm` and `orbox quantize encoder` both go through `update_manifest`, so a bundle
written by either verifies the same way. Reading manifests and checking
artifacts (`primitives.artifacts`) and canonical JSON, keys and signatures (`primitives.signing`) live
on the ground floor, because the box and the image build need them without this toolchain.

Determinism: the manifest holds no wall-clock time unless SOURCE_DATE_EPOCH is unset; then
`created` is the current time. With SOURCE_DATE_EPOCH set, identical inputs give identical bytes.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from primitives.artifacts import MANIFEST_NAME, SCHEMA, ModelBundleError, file_digest, load_manifest
from primitives.atomic import atomic_write_bytes
from primitives.signing import SIGNATURE_NAME, build_timestamp, canonical_json


def empty_manifest(profile: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "profile": profile, "created": build_timestamp(), "artifacts": {}, "sections": {}}


def existing_manifest(bundle_dir: str | os.PathLike, profile: str) -> dict[str, Any] | None:
    """The bundle's manifest if it has one (None for a new bundle), refusing one made for another profile.

    Producers call this before they build, so a bundle they could not add to is refused before any file
    in it is touched; update_manifest calls it again when it merges.
    """
    root = Path(bundle_dir)
    if not (root / MANIFEST_NAME).exists():
        return None
    manifest = load_manifest(root)
    if manifest["profile"] != profile:
        raise ModelBundleError(
            f"{root / MANIFEST_NAME}: bundle is for profile {manifest['profile']!r}, refusing to add {profile!r} "
            "artifacts"
        )
    return manifest


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution (for a manifest's tool record); 'not installed' when absent."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def update_manifest(
    bundle_dir: str | os.PathLike,
    profile: str,
    section: str,
    section_data: dict[str, Any],
    artifacts: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Merge one producer's section and artifacts into the bundle's manifest and write it atomically.

    `artifacts` maps a path relative to the bundle to extra fields (kind, quant type, ...); the
    sha256 and size are computed here from the file on disk. Entries of the same section that
    are no longer listed are dropped, so re-running a producer replaces its own output only.
    Any existing signature is removed, because it no longer matches.
    """
    root = Path(bundle_dir)
    manifest = existing_manifest(root, profile) or empty_manifest(profile)
    manifest["created"] = build_timestamp()
    manifest["artifacts"] = {
        name: entry for name, entry in manifest["artifacts"].items() if entry.get("section") != section
    }
    for relpath, extra in sorted(artifacts.items()):
        file_path = root / relpath
        if not file_path.is_file():
            raise ModelBundleError(f"{file_path}: listed as an artifact but no such file")
        manifest["artifacts"][relpath] = {**extra, "section": section, **file_digest(file_path).as_dict()}
    manifest["sections"][section] = section_data
    write_manifest(root, manifest)
    return manifest


def write_manifest(bundle_dir: str | os.PathLike, manifest: dict[str, Any]) -> bytes:
    root = Path(bundle_dir)
    data = canonical_json(manifest)
    atomic_write_bytes(root / MANIFEST_NAME, data)
    (root / SIGNATURE_NAME).unlink(missing_ok=True)
    return data


def manifest_sha256(bundle_dir: str | os.PathLike) -> str:
    return file_digest(Path(bundle_dir) / MANIFEST_NAME).sha256
