"""Signed update bundles: one file, every byte before the signature covered by it.

Layout (integers big-endian)::

    "ORBXUPD1" | u32 manifest length | manifest (canonical JSON) | payload files, back to back
    | ed25519 signature (64 bytes) | u64 signed length | "ORBXSIG1"

The signature is ed25519 over DOMAIN + SHA-512(bytes[0:signed length]), so the magic, the
manifest and every payload byte are signed; there is no unsigned padding for a bit flip or a
truncation to hide in (a signed hash list over a tar accepted 16 of 300 bit flips). Hashing
first keeps memory constant for multi-GB slot images. The manifest also pins each file's
sha256 and size, which the installer checks again while it writes.

Verification order: envelope bounds, then the signature, and only then is the manifest parsed
and schema-checked. Profile and version policy are the installer's (they need the target).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.version import InvalidVersion, Version

from image_build.errors import ImageError
from primitives.artifacts import file_digest
from primitives.atomic import atomic_writer
from primitives.signing import build_timestamp, canonical_json, sign_bytes, verify_bytes

UPDATE_SCHEMA = "orbox.update/1"
MAGIC = b"ORBXUPD1"
TRAILER_MAGIC = b"ORBXSIG1"
DOMAIN = b"orbox update bundle v1\x00"
_HEAD = struct.Struct(">8sI")
_TRAILER = struct.Struct(">Q8s")
SIGNATURE_SIZE = 64
MAX_MANIFEST_BYTES = 1 << 20
MAX_BUNDLE_BYTES = 64 << 30
MIN_BUNDLE_BYTES = _HEAD.size + 2 + SIGNATURE_SIZE + _TRAILER.size
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ROLES = {"slot-image", "sbom"}


class UpdateBundleRejected(ImageError):
    """The update bundle failed a check; nothing has been written."""


@dataclass(frozen=True)
class PayloadFile:
    name: str
    role: str
    path: Path


def write_update_bundle(
    out: Path, fields: dict[str, Any], files: list[PayloadFile], key: Ed25519PrivateKey
) -> dict[str, Any]:
    """Write a signed bundle atomically; `fields` holds profile, version, min_version and extras."""
    entries, offset = [], 0
    for payload in files:
        digest = file_digest(payload.path)
        entries.append({"name": payload.name, "role": payload.role, "offset": offset, **digest.as_dict()})
        offset += digest.size
    manifest = {"schema": UPDATE_SCHEMA, "created": build_timestamp(), **fields, "files": entries}
    validate_manifest(manifest, offset)
    manifest_bytes = canonical_json(manifest)
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ImageError(f"update manifest is {len(manifest_bytes)} bytes, the limit is {MAX_MANIFEST_BYTES}")
    digest = hashlib.sha512()
    with atomic_writer(out) as handle:
        for block in _blocks(manifest_bytes, files):
            digest.update(block)
            handle.write(block)
        signed_length = handle.tell()
        handle.write(sign_bytes(DOMAIN + digest.digest(), key))
        handle.write(_TRAILER.pack(signed_length, TRAILER_MAGIC))
    return manifest


def _blocks(manifest_bytes: bytes, files: list[PayloadFile]) -> Iterator[bytes]:
    yield _HEAD.pack(MAGIC, len(manifest_bytes)) + manifest_bytes
    for payload in files:
        with open(payload.path, "rb") as source:
            while chunk := source.read(_CHUNK):
                yield chunk


@dataclass
class VerifiedBundle:
    """An open bundle whose envelope and signature checked out; files stream from the same open file."""

    path: Path
    manifest: dict[str, Any]
    payload_offset: int
    handle: IO[bytes]

    def file_entry(self, role: str) -> dict[str, Any]:
        return next(entry for entry in self.manifest["files"] if entry["role"] == role)

    def read_file(self, entry: dict[str, Any], chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """Yield the file's bytes; raise UpdateBundleRejected at the end if they do not match the manifest."""
        digest, remaining = hashlib.sha256(), entry["size"]
        self.handle.seek(self.payload_offset + entry["offset"])
        while remaining:
            chunk = self.handle.read(min(chunk_size, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
            yield chunk
        if remaining or digest.hexdigest() != entry["sha256"]:
            raise UpdateBundleRejected(
                f"{self.path}: payload file {entry['name']!r} changed since the signature "
                "was checked (sha256 or size mismatch while reading)"
            )


@contextlib.contextmanager
def open_update_bundle(path: str | os.PathLike, pubkey: Ed25519PublicKey) -> Iterator[VerifiedBundle]:
    """Check envelope, signature and schema, then yield the bundle; raises UpdateBundleRejected."""
    bundle_path = Path(path)
    try:
        handle = open(bundle_path, "rb")
    except OSError as exc:
        raise UpdateBundleRejected(f"{bundle_path}: cannot open update bundle ({exc.strerror})") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        manifest_length, signed_length = _check_envelope(bundle_path, handle, size)
        _check_signature(bundle_path, handle, signed_length, pubkey)
        handle.seek(_HEAD.size)
        manifest_bytes = handle.read(manifest_length)
        payload_offset = _HEAD.size + manifest_length
        try:
            manifest = json.loads(manifest_bytes)
            validate_manifest(manifest, signed_length - payload_offset)
        except (json.JSONDecodeError, UnicodeDecodeError, ImageError) as exc:
            raise UpdateBundleRejected(f"{bundle_path}: manifest: {exc}") from exc
        yield VerifiedBundle(bundle_path, manifest, payload_offset, handle)


def _check_envelope(path: Path, handle: IO[bytes], size: int) -> tuple[int, int]:
    if size < MIN_BUNDLE_BYTES:
        raise UpdateBundleRejected(
            f"{path}: {size} bytes, too short for an update bundle (at least {MIN_BUNDLE_BYTES})"
        )
    if size > MAX_BUNDLE_BYTES:
        raise UpdateBundleRejected(f"{path}: {size} bytes, larger than the {MAX_BUNDLE_BYTES}-byte limit")
    magic, manifest_length = _HEAD.unpack(handle.read(_HEAD.size))
    if magic != MAGIC:
        raise UpdateBundleRejected(f"{path}: starts with {magic!r}, expected {MAGIC!r}; not an orbox update bundle")
    handle.seek(size - _TRAILER.size)
    signed_length, trailer_magic = _TRAILER.unpack(handle.read(_TRAILER.size))
    if trailer_magic != TRAILER_MAGIC:
        raise UpdateBundleRejected(
            f"{path}: ends with {trailer_magic!r}, expected {TRAILER_MAGIC!r} (truncated or not a bundle)"
        )
    if signed_length != size - SIGNATURE_SIZE - _TRAILER.size:
        raise UpdateBundleRejected(
            f"{path}: trailer says {signed_length} signed bytes, the file holds "
            f"{size - SIGNATURE_SIZE - _TRAILER.size} (truncated or extended)"
        )
    if not 2 <= manifest_length <= min(MAX_MANIFEST_BYTES, signed_length - _HEAD.size):
        raise UpdateBundleRejected(
            f"{path}: manifest length {manifest_length} is outside 2..."
            f"{min(MAX_MANIFEST_BYTES, signed_length - _HEAD.size)}"
        )
    return manifest_length, signed_length


def _check_signature(path: Path, handle: IO[bytes], signed_length: int, pubkey: Ed25519PublicKey) -> None:
    digest, remaining = hashlib.sha512(), signed_length
    handle.seek(0)
    while remaining:
        chunk = handle.read(min(_CHUNK, remaining))
        if not chunk:
            raise UpdateBundleRejected(f"{path}: file shrank while its signature was being checked")
        digest.update(chunk)
        remaining -= len(chunk)
    signature = handle.read(SIGNATURE_SIZE)
    if not verify_bytes(DOMAIN + digest.digest(), signature, pubkey):
        raise UpdateBundleRejected(
            f"{path}: signature does not verify with the given public key "
            "(tampered, corrupted, or signed by another key)"
        )


def validate_manifest(manifest: Any, payload_length: int) -> None:
    """Schema of an update manifest; every file needs a sha256 (a part without one refuses the whole)."""
    if not isinstance(manifest, dict):
        raise ImageError(f"expected a JSON object, found {type(manifest).__name__}")
    if manifest.get("schema") != UPDATE_SCHEMA:
        raise ImageError(f"field 'schema' must be {UPDATE_SCHEMA!r}, found {manifest.get('schema')!r}")
    for field in ("profile", "arch", "version", "min_version", "created"):
        if not isinstance(manifest.get(field), str) or not manifest[field]:
            raise ImageError(f"field {field!r} must be a non-empty string, found {manifest.get(field)!r}")
    for field in ("version", "min_version"):
        try:
            Version(manifest[field])
        except InvalidVersion as exc:
            raise ImageError(f"field {field!r} must be a PEP 440 version, found {manifest[field]!r}") from exc
    if not isinstance(manifest.get("artifacts", {}), dict):
        raise ImageError("field 'artifacts' must be an object")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise ImageError(f"field 'files' must be a non-empty list, found {files!r}")
    expected_offset, names = 0, set()
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "offset", "size", "sha256"}:
            raise ImageError(f"{where}: expected exactly name, role, offset, size, sha256; found {entry!r}")
        if (
            not isinstance(entry["name"], str)
            or not _SAFE_NAME.match(entry["name"])
            or entry["name"] in names
        ):
            raise ImageError(f"{where}.name: expected a unique plain file name, found {entry['name']!r}")
        names.add(entry["name"])
        if entry["role"] not in _ROLES:
            raise ImageError(f"{where}.role: expected one of {sorted(_ROLES)}, found {entry['role']!r}")
        if not isinstance(entry["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise ImageError(f"{where}.sha256: expected 64 lower-case hex digits, found {entry['sha256']!r}")
        for field in ("offset", "size"):
            if type(entry[field]) is not int or entry[field] < 0:
                raise ImageError(f"{where}.{field}: expected a non-negative integer, found {entry[field]!r}")
        if entry["offset"] != expected_offset:
            raise ImageError(
                f"{where}.offset: expected {expected_offset} (files are back to back), "
                f"found {entry['offset']}"
            )
        expected_offset += entry["size"]
    if expected_offset != payload_length:
        raise ImageError(f"files add up to {expected_offset} bytes, the payload holds {payload_length}")
    if [entry["role"] for entry in files].count("slot-image") != 1:
        raise ImageError("expected exactly one file with role 'slot-image'")
