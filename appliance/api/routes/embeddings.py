"""The encoder worker's resource: POST /v1/embeddings and POST /v1/rerank (llama.cpp's and Cohere's shape)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from appliance.api.deps import ApiContext, AuthedCaller, Ctx
from appliance.api.errors import ApiError, unavailable
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.schemas import (
    MAX_EMBED_INPUTS,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
)
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
        embedded = await _encoder_result(ctx, request, lambda: ctx.supervisor.encoder.submit_embed(texts),
                                         "embedding")
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


@router.post("/v1/rerank", responses={200: {"model": RerankResponse}})
async def rerank(body: RerankRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """Relevance of each document to the query from the bundle's reranker (a 404 when the bundle has none)."""
    record = RequestRecord("/v1/rerank", caller.name)
    digest, length = prompt_digest([body.query, *body.documents])
    record.set(model=body.model, prompt_sha256=digest, prompt_chars=length, inputs=len(body.documents))
    try:
        if not all(body.documents):
            raise ApiError(400, f"documents: expected non-empty strings, found {body.documents.count('')} empty",
                           code="invalid_request", param="documents")
        model = ctx.reranker_model(body.model)
        record.set(artifact_sha256=model.sha256, profile=model.profile)
        scores = await _encoder_result(
            ctx, request, lambda: ctx.supervisor.encoder.submit_rerank(body.query, body.documents), "reranking")
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response()
    ranked = sorted(enumerate(map(float, scores)), key=lambda pair: (-pair[1], pair[0]))[:body.top_n]
    results = [RerankResult(index=index, relevance_score=score,
                            document=RerankDocument(text=body.documents[index]) if body.return_documents else None)
               for index, score in ranked]
    ctx.recorder.finish(record, 200)
    answer = RerankResponse(id=record.id, model=model.id, results=results,
                            usage=EmbeddingUsage(prompt_tokens=0, total_tokens=0))
    return JSONResponse(answer.model_dump(exclude_none=True),
                        headers={**model.headers(), "X-Request-Id": record.id})


async def _encoder_result(ctx: ApiContext, request: Request, submit: Callable[[], Future[np.ndarray]],
                          doing: str) -> np.ndarray:
    """The encoder worker's answer within the request's deadline; its failures as API errors."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(submit()), timeout=ctx.deadline_s(request))
    except Unavailable as exc:
        raise unavailable(str(exc), exc.retry_after_s) from exc
    except GenerationError as exc:
        status = 503 if exc.code in ("worker_lost", "worker_unavailable") else 500
        raise ApiError(status, str(exc), code=exc.code, retry_after_s=5 if status == 503 else None) from exc
    except TimeoutError as exc:
        raise ApiError(504, f"the request's deadline passed while {doing}", code="deadline_exceeded") from exc
