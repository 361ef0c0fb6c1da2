"""The KB's manifest.json: the model-bundle form (primitives.artifacts SCHEMA), section "knowledge_base".

Every file in the KB is an artifact with its sha256 and size, the copied encoder files included,
so `primitives.signing.verify_bundle` and `inference.encoder.load_encoder` check a KB exactly as
they check a model bundle. The section records what decides the KB's bytes: the source
documents' sha256, the encoders' sha256, the segmenter's dictionary and the chunking
parameters. No timestamp: identical inputs give an identical manifest, hence an identical signature input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowledge_base.errors import KnowledgeBaseError
from primitives.artifacts import MANIFEST_NAME, SCHEMA, ModelBundleError, file_digest, load_manifest
from primitives.atomic import atomic_write_bytes
from primitives.signing import canonical_json, verify_bundle

KB_FORMAT = "orbox.kb/1"
SECTION = "knowledge_base"
DATABASE = "kb.sqlite"
EMBEDDINGS = "embeddings.npy"


def write_kb_manifest(root: Path, profile: str, section: dict[str, Any],
                      artifacts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Hash every listed file (relative path -> extra fields) and write manifest.json atomically."""
    entries = {relpath: {**extra, **file_digest(root / relpath).as_dict()}
               for relpath, extra in sorted(artifacts.items())}
    manifest = {"schema": SCHEMA, "profile": profile, "artifacts": entries,
                "sections": {SECTION: {"format": KB_FORMAT, **section}}}
    atomic_write_bytes(root / MANIFEST_NAME, canonical_json(manifest))
    return manifest


def read_kb_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a KB directory, refusing model bundles and other formats by name."""
    if not root.is_dir():
        raise KnowledgeBaseError(f"{root}: no such KB directory")
    try:
        manifest = load_manifest(root)
    except ModelBundleError as exc:
        raise KnowledgeBaseError(str(exc)) from exc
    section = manifest["sections"].get(SECTION)
    if not isinstance(section, dict) or section.get("format") != KB_FORMAT:
        found = section.get("format") if isinstance(section, dict) else None
        raise KnowledgeBaseError(f"{root / MANIFEST_NAME}: field 'sections.{SECTION}.format' must be {KB_FORMAT!r}, "
                                 f"found {found!r} (is this a model bundle rather than a KB?)")
    return manifest


def verify_kb(root: Path, pubkey: Path | None = None) -> list[str]:
    """Problems with a KB (empty when every file matches and, with a key, the signature is good)."""
    try:
        read_kb_manifest(root)
    except KnowledgeBaseError as exc:
        return [str(exc)]
    return verify_bundle(root, pubkey)
