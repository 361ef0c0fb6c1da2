"""Signed bundles, as every side that writes or checks one needs them: canonical JSON, ed25519 keys.

Layout of a bundle directory::

    manifest.json       canonical JSON (sorted keys, 2-space indent, UTF-8, trailing newline)
    manifest.json.sig   raw 64-byte ed25519 signature over the exact bytes of manifest.json
    <artifacts...>      every file listed under "artifacts" with its sha256 and size

Lives in `orbox` rather than `quantize` because the image build signs update bundles and
manifests too, and must not import the vendor model toolchain. Building a model bundle's
manifest is `quantize.manifest`'s job; reading and checking artifacts is `primitives.artifacts`'.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from primitives.artifacts import MANIFEST_NAME, ModelBundleError, load_manifest, verify_artifact
from primitives.atomic import atomic_write_bytes

SIGNATURE_NAME = "manifest.json.sig"


class KeyFileError(Exception):
    """A signing key file is missing, unreadable, of the wrong kind, or would be overwritten."""


class SourceDateEpochError(ValueError):
    """SOURCE_DATE_EPOCH is set but is not a whole number of seconds."""


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
            raise SourceDateEpochError(
                f"SOURCE_DATE_EPOCH must be an integer number of seconds, got {epoch!r}") from exc
    else:
        moment = _dt.datetime.now(tz=_dt.UTC).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- keys


def generate_keypair(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SubjectPublicKeyInfo PEM)."""
    prefix = Path(prefix)
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key")
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
    loader = functools.partial(serialization.load_pem_private_key, password=None)
    return _load_key(path, loader, Ed25519PrivateKey, "an unencrypted PEM PKCS#8 private key", "private")


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    return _load_key(path, serialization.load_pem_public_key, Ed25519PublicKey,
                     "a PEM SubjectPublicKeyInfo public key", "public")


def _load_key(path: str | os.PathLike, loader: Callable[[bytes], object], expected: type, pem_kind: str,
              role: str) -> Any:
    """Parse one PEM key file, refusing anything that is not an ed25519 key of the expected role."""
    data = _read_key_file(path)
    try:
        key = loader(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not {pem_kind} ({exc})") from exc
    if not isinstance(key, expected):
        raise KeyFileError(f"{path}: expected an ed25519 {role} key, found {type(key).__name__}")
    return key


def _read_key_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from exc


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
    except ModelBundleError as exc:
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
