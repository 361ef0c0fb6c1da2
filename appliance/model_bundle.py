"""The box's read-only view of a model bundle: find an artifact, check its sha256, or refuse it.

The box never imports the vendor toolchain (quantize), so it reads manifest.json itself and
checks each file with `primitives.artifacts.verify_artifact` right before a worker loads it: ext4 does
not protect file contents, and a flipped byte in a model is otherwise read back silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primitives.artifacts import MANIFEST_NAME, ModelBundleError, file_digest, load_manifest, verify_artifact

ENCODER_ROLES = ("embedding", "reranker")


@dataclass(frozen=True)
class CheckedArtifact:
    path: Path
    relpath: str
    sha256: str
    entry: dict[str, Any]


def manifest_sha256(bundle_dir: str | os.PathLike) -> str | None:
    path = Path(bundle_dir) / MANIFEST_NAME
    return file_digest(path).sha256 if path.is_file() else None


def llm_ggufs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's LLM GGUF entries by relpath (empty: the bundle holds no LLM)."""
    return {relpath: entry for relpath, entry in manifest["artifacts"].items()
            if isinstance(entry, dict) and entry.get("kind") == "gguf" and entry.get("role", "llm") == "llm"}


def encoder_roles(manifest: dict[str, Any]) -> list[str]:
    """The encoder roles the manifest holds, each as `encoder/<role>/encoder.json` (empty: no encoder)."""
    return [role for role in ENCODER_ROLES if f"encoder/{role}/encoder.json" in manifest["artifacts"]]


def checked_llm_gguf(bundle_dir: str | os.PathLike, preference: list[str]) -> CheckedArtifact:
    """The bundle's GGUF of the most preferred quant type, after its sha256 check."""
    candidates = llm_ggufs(load_manifest(bundle_dir))
    if not candidates:
        raise ModelBundleError(f"{Path(bundle_dir) / MANIFEST_NAME}: lists no artifact with kind 'gguf' "
                              "and role 'llm'; build one with `orbox quantize llm`")
    rank = {quant: index for index, quant in enumerate(preference)}
    relpath = min(sorted(candidates), key=lambda name: rank.get(str(candidates[name].get("quant_type")), len(rank)))
    return check_artifact(bundle_dir, relpath, candidates[relpath])


def check_artifact(bundle_dir: str | os.PathLike, relpath: str, entry: dict[str, Any]) -> CheckedArtifact:
    problems = verify_artifact(bundle_dir, relpath, entry)
    if problems:
        raise ModelBundleError("refusing to load: " + "; ".join(problems))
    return CheckedArtifact(Path(bundle_dir) / relpath, relpath, str(entry["sha256"]), entry)
