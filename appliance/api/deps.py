"""The routes' FastAPI dependencies: the request context (`Ctx`) and the authenticated caller (`AuthedCaller`).

The context holds what every route needs: the supervisor, settings, keys, admission queue and recorder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from appliance.api.admission import AdmissionQueue
from appliance.api.catalog import ModelInfo, find, kb_models, models
from appliance.api.errors import ApiError, unauthorized, unavailable
from appliance.api.keys import KeyStore
from appliance.api.records import Recorder, RequestRecord
from appliance.api.settings import ApiSettings
from appliance.api.supervisor_api import SupervisorApi
from appliance.knowledge_bases import MODEL_PREFIX, ServedKb
from primitives.artifacts import ModelBundleError, load_manifest

DEADLINE_HEADER = "X-Orbox-Deadline"


@dataclass(frozen=True)
class Caller:
    name: str
    rank: int


class ApiContext:
    def __init__(self, supervisor: SupervisorApi, keys: KeyStore, settings: ApiSettings, recorder: Recorder,
                 admission: AdmissionQueue):
        self.supervisor = supervisor
        self.keys = keys
        self.settings = settings
        self.recorder = recorder
        self.admission = admission
        self._manifest: dict[str, Any] | None = None

    @property
    def profile(self) -> str:
        return self.supervisor.profile.name

    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            try:
                self._manifest = load_manifest(self.supervisor.bundle_dir)
            except ModelBundleError:
                return {}
        return self._manifest

    def models(self) -> list[ModelInfo]:
        return models(self.supervisor.status(), self.manifest()) + kb_models(self.supervisor.kbs, self.profile)

    def _model(self, model_id: str, role: str, worker: str) -> ModelInfo:
        status = self.supervisor.status()
        model = find(status, self.manifest(), model_id, role)
        if model is not None:
            return model
        known = [m.id for m in models(status, self.manifest()) if m.role == role]
        state = next((w["state"] for w in status["workers"] if w["name"] == worker), None)
        if not known and state is None:  # never started: the bundle holds no such model, or the config left it out
            raise ApiError(404, f"model: this box serves no {role} model (no {worker} worker: see "
                                "/api/status bundle.workers_left_out)", code="model_not_found", param="model")
        if not known:
            if state == "ready":
                raise ApiError(404, f"model: this box's model bundle has no {role} model (the {worker} worker is "
                               f"ready without one), found {model_id!r}", code="model_not_found", param="model")
            raise unavailable(f"no {role} model is loaded (the {worker} worker is {state})", 5,
                              code="model_not_loaded")
        raise ApiError(404, f"model: no {role} model {model_id!r} on this box; available: {', '.join(known)}",
                       code="model_not_found", param="model")

    def llm_model(self, model_id: str) -> ModelInfo:
        return self._model(model_id, "llm", "llm")

    def served_llm(self) -> ModelInfo:
        """The LLM this box serves (grounded answers and clinical scenarios use it, whatever its id)."""
        found = [model for model in models(self.supervisor.status(), self.manifest()) if model.role == "llm"]
        if not found:
            raise unavailable("no LLM is loaded to write a grounded answer or a clinical draft (orbox.mode "
                              "'quote' needs none)", 5,
                              code="model_not_loaded")
        return found[0]

    def embedding_model(self, model_id: str) -> ModelInfo:
        return self._model(model_id, "embedding", "encoder")

    def reranker_model(self, model_id: str) -> ModelInfo:
        return self._model(model_id, "reranker", "encoder")

    def kb(self, name: str, param: str) -> ServedKb:
        """The served KB `name` (without the kb: prefix); a 404 naming the served ones, or why it was refused."""
        kbs = self.supervisor.kbs
        served = kbs.get(name)
        if served is not None:
            return served
        if name in kbs.refused:
            path, reason = kbs.refused[name]
            raise ApiError(404, f"{param}: the knowledge base {MODEL_PREFIX}{name} ({path}) was refused at start: "
                           f"{reason}", code="kb_not_loaded", param=param)
        known = ", ".join(kbs.served_ids()) or "none (start `orbox serve` with --kb KB_DIR)"
        raise ApiError(404, f"{param}: no knowledge base {MODEL_PREFIX}{name!s} on this box; served: {known}",
                       code="kb_not_found", param=param)

    def deadline_s(self, request: Request) -> float:
        """The config's deadline, or a shorter one from the X-Orbox-Deadline header (seconds)."""
        raw = request.headers.get(DEADLINE_HEADER)
        if raw is None:
            return self.settings.deadline_s
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= self.settings.deadline_s:
            raise ApiError(400, f"{DEADLINE_HEADER}: expected seconds in (0, {self.settings.deadline_s:g}], "
                           f"found {raw[:32]!r}", code="invalid_request", param=DEADLINE_HEADER)
        return value


def context(request: Request) -> ApiContext:
    """The one ApiContext of the application (built by create_app)."""
    return request.app.state.ctx


Ctx = Annotated[ApiContext, Depends(context)]


async def authenticated(request: Request, ctx: Ctx) -> Caller:
    """Bearer key check; a failure is a 401 in the OpenAI shape, and is audited like any request."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    record = ctx.keys.authenticate(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if record is None:
        why = "no API key (send 'Authorization: Bearer KEY')" if not header else "invalid API key"
        audit = RequestRecord(request.url.path, None, started=time.monotonic())
        ctx.recorder.finish(audit, 401, error="invalid_api_key")
        raise unauthorized(f"{why}; keys are issued per device with `orbox api-keys add NAME`")
    return Caller(record.name, record.rank)


AuthedCaller = Annotated[Caller, Depends(authenticated)]
