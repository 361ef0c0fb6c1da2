"""The knowledge-base resource: POST /v1/kb/{name}/search (retrieval with exact spans).

Grounded answers (`model: kb:<name>` on /v1/chat/completions) are routed by routes.llm to
routes.grounded. Search runs on a thread under the KB's lock (appliance.knowledge_bases says why).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from appliance.api.deps import AuthedCaller, Ctx
from appliance.api.errors import ApiError
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.schemas import KbSearchRequest, KbSearchResult, KbSearchResults
from knowledge_base import KnowledgeBaseError

router = APIRouter(tags=["knowledge base"])


@router.post("/v1/kb/{name}/search", responses={200: {"model": KbSearchResults}})
async def search(name: str, body: KbSearchRequest, ctx: Ctx, caller: AuthedCaller) -> Response:
    """The top_k chunks for a query (hybrid lexical + dense), each with its span in its document's text."""
    record = RequestRecord("/v1/kb/search", caller.name)
    digest, length = prompt_digest(body.query)
    record.set(kb=name, prompt_sha256=digest, prompt_chars=length, top_k=body.top_k)
    try:
        served = ctx.kb(name, "name")
        record.set(kb_sha256=served.kb.sha256)
        try:
            hits = await served.call(lambda kb: kb.search(body.query, body.top_k))
        except KnowledgeBaseError as exc:
            raise ApiError(400, f"query: {exc}", code="invalid_request", param="query") from exc
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    ctx.recorder.finish(record, 200, chunk_ids=[hit.chunk_id for hit in hits])
    results = KbSearchResults(model=served.model_id, kb_sha256=served.kb.sha256,
                              results=[KbSearchResult(**hit.as_dict()) for hit in hits])
    return JSONResponse(results.model_dump(), headers={"X-Orbox-Kb-Sha256": served.kb.sha256,
                                                       "X-Request-Id": record.id})
