"""Artifact bundles: one manifest.json per directory, sha256 of every file, ed25519 signatures.

This is the single manifest and signing module. `orbox quantize llm`, `orbox quantize encoder`
and the image build all go through it, so a bundle written by any of them verifies the same way.

Layout of a bundle directory::

    manifest.json       canonical JSON (sorted keys, 2-space indent, UTF-8, trailing newline)
    manifest.json.sig   raw 64-byte ed25519 signature over the exact bytes of manifest.json
    <artifacts...>      every file listed under "artifacts" with its sha256 and size

Determinism: the manifest holds no wall-clock time unless SOURCE_DATE_EPOCH is unset; then
`created` is the current time. With SOURCE_DATE_EPOCH set, identical inputs give identical bytes.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orbox.artifacts import MANIFEST_NAME, SCHEMA, FileDigest, file_digest, load_manifest, verify_artifact
from orbox.artifacts import ManifestError as BundleError
from orbox.atomic import atomic_write_bytes

# re-exported: one module for bundle code on the vendor side
__all__ = ["MANIFEST_NAME", "SCHEMA", "BundleError", "FileDigest", "file_digest", "load_manifest", "verify_artifact"]

SIGNATURE_NAME = "manifest.json.sig"


def canonical_json(document: Any) -> bytes:
    """The one serialisation used for manifests, so equal content gives equal bytes."""
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build_timestamp() -> str:
    """ISO-8601 UTC time from SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.UTC)
        except ValueError as exc:
            raise BundleError(f"SOURCE_DATE_EPOCH must be an integer number of seconds, got {epoch!r}") from exc
    else:
        moment = _dt.datetime.now(tz=_dt.UTC).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- manifests


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
        raise BundleError(
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
            raise BundleError(f"{file_path}: listed as an artifact but no such file")
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


# --------------------------------------------------------------------------- keys


def generate_keypair(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM)."""
    prefix = Path(prefix)
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise BundleError(f"{path}: already exists; refusing to overwrite a key")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(key_path, private_pem)
    os.chmod(key_path, 0o600)
    atomic_write_bytes(pub_path, public_pem)
    return key_path, pub_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not an unencrypted PEM PKCS#8 private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: expected an ed25519 private key, found {type(key).__name__}")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a PEM SubjectPublicKeyInfo public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: expected an ed25519 public key, found {type(key).__name__}")
    return key


def _read_key_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read key file ({exc.strerror})") from exc


# --------------------------------------------------------------------------- signatures


def sign_bytes(data: bytes, key: Ed25519PrivateKey) -> bytes:
    return key.sign(data)


def verify_bytes(data: bytes, signature: bytes, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def sign_bundle(bundle_dir: str | os.PathLike, key_path: str | os.PathLike) -> Path:
    """Sign the exact bytes of manifest.json; the manifest in turn pins every artifact's sha256."""
    root = Path(bundle_dir)
    key = load_private_key(key_path)
    data = (root / MANIFEST_NAME).read_bytes()
    signature_path = root / SIGNATURE_NAME
    atomic_write_bytes(signature_path, sign_bytes(data, key))
    return signature_path


def verify_bundle(bundle_dir: str | os.PathLike, pubkey_path: str | os.PathLike | None = None) -> list[str]:
    """Return a list of problems (empty when the bundle is intact and, if a key is given, signed by it)."""
    root = Path(bundle_dir)
    try:
        manifest = load_manifest(root)
    except BundleError as exc:
        return [str(exc)]
    problems: list[str] = []
    if pubkey_path is not None:
        signature_path = root / SIGNATURE_NAME
        if not signature_path.is_file():
            problems.append(f"{signature_path}: missing; the bundle is not signed")
        elif not verify_bytes((root / MANIFEST_NAME).read_bytes(), signature_path.read_bytes(),
                              load_public_key(pubkey_path)):
            problems.append(f"{signature_path}: signature does not match manifest.json and {pubkey_path}")
    for relpath, entry in sorted(manifest["artifacts"].items()):
        problems.extend(verify_artifact(root, relpath, entry))
    return problems
