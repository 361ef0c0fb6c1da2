"""What the box serves right now: model ids, artifact sha256, quant type and profile, from the live workers.

Read from the workers' ready info (the LLM worker reports the GGUF it loaded after checking its
sha256; the encoder worker reports each role), so `/v1/models` and every response's fingerprint
name the artifact that is actually loaded, not merely the one the manifest lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from appliance.api.schemas import ModelCard
from appliance.knowledge_bases import KbRegistry


@dataclass(frozen=True)
class ModelInfo:
    id: str
    role: str  # "llm", "embedding", "reranker" or "kb"
    artifact: str
    sha256: str
    quant_type: str | None
    profile: str
    worker_state: str
    n_ctx: int | None = None
    dim: int | None = None

    @property
    def fingerprint(self) -> str:
        """`system_fingerprint`: the profile and the full artifact sha256."""
        return f"orbox:{self.profile}:{self.sha256}"

    def headers(self) -> dict[str, str]:
        return {"X-Orbox-Artifact-Sha256": self.sha256, "X-Orbox-Profile": self.profile,
                "X-Orbox-Model": self.id}

    def card(self) -> ModelCard:
        """The OpenAI `model` object, with the artifact and profile added."""
        return ModelCard(id=self.id, role=self.role, artifact=self.artifact, sha256=self.sha256,
                         quant_type=self.quant_type, profile=self.profile, ready=self.worker_state == "ready",
                         n_ctx=self.n_ctx, dim=self.dim)


def _worker(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((w for w in status["workers"] if w["name"] == name), None)


def models(status: dict[str, Any], manifest: dict[str, Any]) -> list[ModelInfo]:
    """The loaded models; `manifest` supplies the encoder's quantization (the LLM reports its own)."""
    profile = status["profile"]
    found: list[ModelInfo] = []
    llm = _worker(status, "llm")
    if llm and llm["info"].get("sha256"):
        info = llm["info"]
        found.append(ModelInfo(PurePosixPath(info["artifact"]).stem, "llm", info["artifact"], info["sha256"],
                               info.get("quant_type"), profile, llm["state"], n_ctx=info.get("n_ctx")))
    encoder = _worker(status, "encoder")
    if encoder:
        for role, info in sorted(encoder["info"].get("roles", {}).items()):
            sha256 = str(info["sha256"])
            artifact, entry = next(((path, entry) for path, entry in manifest.get("artifacts", {}).items()
                                    if entry.get("sha256") == sha256), (f"encoder/{role}", {}))
            section = manifest.get("sections", {}).get("encoder", {}).get(role, {})
            quant = entry.get("quant_type") or section.get("chosen")
            found.append(ModelInfo(str(info["model_id"]), role, artifact, sha256, quant, profile,
                                   encoder["state"], dim=info.get("dim")))
    return found


def kb_models(kbs: KbRegistry, profile: str) -> list[ModelInfo]:
    """Each served KB as `kb:<name>`; its sha256 is that of its manifest, which pins every file of it."""
    return [ModelInfo(served.model_id, "kb", str(served.path), served.kb.sha256, None, profile, "ready",
                      dim=served.kb.encoder.dim) for served in kbs.served.values()]


def find(status: dict[str, Any], manifest: dict[str, Any], model_id: str, role: str) -> ModelInfo | None:
    return next((m for m in models(status, manifest) if m.role == role and m.id == model_id), None)
