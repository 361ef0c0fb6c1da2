"""POST /v1/embeddings on the supervisor's encoder worker."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from appliance.api.deps import AuthedCaller, Ctx
from appliance.api.errors import ApiError, unavailable
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.schemas import MAX_EMBED_INPUTS, Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from appliance.clients import GenerationError, Unavailable

router = APIRouter(tags=["openai"])


@router.post("/v1/embeddings", responses={200: {"model": EmbeddingList}})
async def embeddings(body: EmbeddingRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """Sentence embeddings from the encoder worker (INT8 MiniLM on the box)."""
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
            future = ctx.supervisor.encoder.submit_embed(texts)
            embedded = await asyncio.wait_for(asyncio.wrap_future(future), timeout=ctx.deadline_s(request))
        except Unavailable as exc:
            raise unavailable(str(exc), exc.retry_after_s) from exc
        except GenerationError as exc:
            status = 503 if exc.code in ("worker_lost", "worker_unavailable") else 500
            raise ApiError(status, str(exc), code=exc.code, retry_after_s=5 if status == 503 else None) from exc
        except TimeoutError as exc:
            raise ApiError(504, "the request's deadline passed while embedding", code="deadline_exceeded") from exc
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response()
    vectors = np.asarray(embedded, dtype=np.float32)
    data = [Embedding(index=i, embedding=(base64.b64encode(vector.astype("<f4").tobytes()).decode()
                                          if body.encoding_format == "base64" else vector.tolist()))
            for i, vector in enumerate(vectors)]
    ctx.recorder.finish(record, 200, dim=int(vectors.shape[1]) if vectors.ndim == 2 else None)
    listing = EmbeddingList(data=data, model=model.id, usage=EmbeddingUsage(prompt_tokens=0, total_tokens=0))
    return JSONResponse(listing.model_dump(), headers={**model.headers(), "X-Request-Id": record.id})
