"""Model bundles as both sides read them: manifest.json, streaming sha256, per-artifact checks.

Lives outside `quantize` because the box (appliance) verifies every artifact before loading it
and must not import the vendor toolchain. ext4 does not protect file contents: a flipped byte
in a model is read back silently, so this check is the only line of defence. Writing and signing
bundles is the vendor side's job (`quantize.manifest`, on top of `primitives.signing`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
SCHEMA = "orbox.bundle/1"
MANIFEST_NAME = "manifest.json"


class ModelBundleError(Exception):
    """A model bundle's manifest or one of its artifacts is missing, malformed or does not match."""


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


def file_digest(path: str | os.PathLike) -> FileDigest:
    """Streaming sha256 and size of a file (constant memory, any size)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(digest.hexdigest(), size)


def verify_artifact(bundle_dir: str | os.PathLike, relpath: str, entry: dict[str, Any]) -> list[str]:
    """Check one artifact against its manifest entry (also used by the box before loading)."""
    path = Path(bundle_dir) / relpath
    if not path.is_file():
        return [f"{path}: listed in the manifest but missing"]
    actual = file_digest(path)
    if actual.size != entry.get("size"):
        return [f"{path}: size {actual.size} bytes, manifest says {entry.get('size')}"]
    if actual.sha256 != entry.get("sha256"):
        return [f"{path}: sha256 {actual.sha256}, manifest says {entry.get('sha256')}"]
    return []


def load_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and schema-check `bundle_dir/manifest.json`."""
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ModelBundleError(f"{path}: no manifest; expected a bundle directory holding {MANIFEST_NAME}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelBundleError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ModelBundleError(f"{path}: field 'schema' must be {SCHEMA!r}, found {found!r}")
    for field, kind in (("profile", str), ("artifacts", dict), ("sections", dict)):
        if not isinstance(document.get(field), kind):
            raise ModelBundleError(f"{path}: field {field!r} must be a {kind.__name__}, found {document.get(field)!r}")
    return document
