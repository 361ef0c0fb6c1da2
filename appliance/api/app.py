"""The FastAPI application: OpenAI-compatible endpoints, health, metrics, status, built on a Supervisor."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from appliance.api import llm_routes, status_page
from appliance.api.admission import AdmissionQueue
from appliance.api.context import ApiContext, ApiSettings, AuthedCaller, context_of
from appliance.api.errors import ApiError, install_error_handlers, unavailable
from appliance.api.keys import KeyStore
from appliance.api.metrics import ApiMetrics
from appliance.api.records import Recorder, RequestRecord, prompt_digest
from appliance.api.schemas import MAX_EMBED_INPUTS, EmbeddingRequest
from appliance.clients import GenerationError, Unavailable

__all__ = ["ApiSettings", "create_app"]


def readiness(status: dict[str, Any]) -> tuple[bool, list[str]]:
    """Ready = the supervisor finished starting and every configured model worker is loaded and warmed up."""
    problems = [] if status["ready"] else ["the supervisor is still starting its workers"]
    for entry in status["workers"]:
        if entry["state"] != "ready":
            problems.append(f"{entry['name']} worker is {entry['state']}"
                            + (f" ({entry['detail']})" if entry.get("detail") else ""))
    return not problems, problems


def create_app(supervisor: Any, keys: KeyStore, settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    admission = AdmissionQueue(settings.admission_slots, settings.max_waiting)
    metrics = ApiMetrics(supervisor.status, lambda: admission.waiting)
    recorder = Recorder(supervisor.audit, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        recorder.close()

    app = FastAPI(title="orbox", version="1", lifespan=lifespan,
                  description="The box's local OpenAI-compatible API. Every response names the artifact "
                              "(sha256) and hardware profile that produced it.")
    app.state.ctx = ApiContext(supervisor, keys, settings, recorder, admission)
    install_error_handlers(app)
    app.include_router(llm_routes.router)
    app.include_router(status_page.router)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """Public: the HTTP process answers."""
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"])
    async def ready(request: Request, caller: AuthedCaller) -> Response:
        """Models loaded and warmed up; 503 + Retry-After otherwise."""
        ok, problems = readiness(context_of(request).supervisor.status())
        if not ok:
            return unavailable("not ready: " + "; ".join(problems), 5, code="not_ready").response()
        return JSONResponse({"status": "ready"})

    @app.get("/v1/models", tags=["openai"])
    async def list_models(request: Request, caller: AuthedCaller) -> dict[str, Any]:
        """Each model with its artifact sha256, profile and quant type."""
        ctx = context_of(request)
        record = RequestRecord("/v1/models", caller.name)
        data = [m.openai() for m in ctx.models()]
        ctx.recorder.finish(record, 200, models=len(data))
        return {"object": "list", "data": data}

    @app.post("/v1/embeddings", tags=["openai"])
    async def embeddings(body: EmbeddingRequest, request: Request,
                         caller: AuthedCaller) -> Response:
        """Sentence embeddings from the encoder worker (INT8 MiniLM on the box)."""
        ctx = context_of(request)
        record = RequestRecord("/v1/embeddings", caller.name)
        texts = body.texts()
        digest, length = prompt_digest(texts)
        record.set(model=body.model, prompt_sha256=digest, prompt_chars=length, inputs=len(texts))
        try:
            if len(texts) > MAX_EMBED_INPUTS or not all(texts):
                raise ApiError(400, f"input: expected 1-{MAX_EMBED_INPUTS} non-empty strings, found {len(texts)} "
                               f"of which {sum(1 for t in texts if not t)} empty", code="invalid_request",
                               param="input")
            model = ctx.embedding_model(body.model)
            record.set(artifact_sha256=model.sha256, profile=model.profile)
            try:
                future = ctx.supervisor.encoder.submit("embed", texts=texts)
                reply = await asyncio.wait_for(asyncio.wrap_future(future), timeout=ctx.deadline_s(request))
            except Unavailable as exc:
                raise unavailable(str(exc), exc.retry_after_s) from exc
            except GenerationError as exc:
                status = 503 if exc.code in ("worker_lost", "worker_unavailable") else 500
                raise ApiError(status, str(exc), code=exc.code, retry_after_s=5 if status == 503 else None) from exc
            except TimeoutError as exc:
                raise ApiError(504, "the request's deadline passed while embedding", code="deadline_exceeded") \
                    from exc
        except ApiError as error:
            ctx.recorder.finish(record, error.status, error=error.code)
            return error.response()
        vectors = np.asarray(reply["embeddings"], dtype=np.float32)
        data = [{"object": "embedding", "index": i,
                 "embedding": (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                               if body.encoding_format == "base64" else vector.tolist())}
                for i, vector in enumerate(vectors)]
        ctx.recorder.finish(record, 200, dim=int(vectors.shape[1]) if vectors.ndim == 2 else None)
        return JSONResponse({"object": "list", "data": data, "model": model.id,
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}},
                            headers={**model.headers(), "X-Request-Id": record.id})

    @app.get("/metrics", tags=["ops"])
    async def prometheus(request: Request, caller: AuthedCaller) -> Response:
        """Prometheus text format."""
        return Response(context_of(request).recorder.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/status", tags=["ops"])
    async def api_status(request: Request, caller: AuthedCaller) -> dict[str, Any]:
        """The supervisor's full status as JSON."""
        ctx = context_of(request)
        status = ctx.supervisor.status()
        ctx.recorder.finish(RequestRecord("/api/status", caller.name), 200)
        api = {"admission_waiting": ctx.admission.waiting, "admission_running": ctx.admission.running}
        return {**status, "api": api}

    return app
