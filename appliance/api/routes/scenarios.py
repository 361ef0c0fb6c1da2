"""Clinical scenarios: POST /v1/scenarios/admission-note and /patient-brief (appliance.scenarios does the work).

The LLM runs like a grounded answer (routes.grounded.generate_json: admission queue, LLM worker,
grammar from the per-request schema, temperature 0); the server checks and assembles the draft
before any of it is sent. One audit record per draft: the facts' and the draft's sha256 and
lengths, counts of dropped, restored and unused facts, the time spent outside the LLM; never text.
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from appliance.api.deps import ApiContext, AuthedCaller, Caller, Ctx
from appliance.api.errors import ApiError
from appliance.api.records import RequestRecord, prompt_digest
from appliance.api.routes.grounded import generate_json
from appliance.api.schemas import ScenarioDraft, ScenarioReport, ScenarioRequest, TokenUsage
from appliance.scenarios import drafting
from appliance.scenarios.admission_note import ADMISSION_NOTE
from appliance.scenarios.drafting import DraftSpec
from appliance.scenarios.facts import Fact
from appliance.scenarios.patient_brief import PATIENT_BRIEF

router = APIRouter(tags=["scenarios"])


@router.post("/v1/scenarios/admission-note", responses={200: {"model": ScenarioDraft}})
async def draft_admission_note(body: ScenarioRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """A draft admission note over the given facts, in the sections of 《病历书写基本规范》: every item cites its
    facts and passed the checker; allergy and denied-history facts always appear; empty sections say "未提供"."""
    return await _draft(ADMISSION_NOTE, "/v1/scenarios/admission-note", body, request, ctx, caller)


@router.post("/v1/scenarios/patient-brief", responses={200: {"model": ScenarioDraft}})
async def draft_patient_brief(body: ScenarioRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """A patient brief for a ward round or handover, under the same rules as the admission note."""
    return await _draft(PATIENT_BRIEF, "/v1/scenarios/patient-brief", body, request, ctx, caller)


async def _draft(spec: DraftSpec, endpoint: str, body: ScenarioRequest, request: Request, ctx: ApiContext,
                 caller: Caller) -> Response:
    record = RequestRecord(endpoint, caller.name)
    facts = [Fact(fact.id, fact.text) for fact in body.facts]
    digest, length = prompt_digest([[fact.id, fact.text] for fact in facts])
    record.set(language=body.language, facts=len(facts), facts_sha256=digest, facts_chars=length)
    try:
        llm = ctx.served_llm()
        record.set(artifact_sha256=llm.sha256)
        started = time.perf_counter()
        schema = drafting.output_schema(spec, facts, body.language)
        messages = drafting.prompt_messages(spec, facts, body.language)
        outside = time.perf_counter() - started
        output, usage = await generate_json(ctx, request, caller, record, messages, schema, drafting.MAX_TOKENS)
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    started = time.perf_counter()
    note = drafting.assemble(spec, facts, body.language, drafting.parse(spec, output, facts))
    outside += time.perf_counter() - started
    response = ScenarioDraft(
        id=f"draft-{record.id}", object=f"scenario.{spec.name}", model=llm.id, system_fingerprint=llm.fingerprint,
        language=note.language, sections=note.sections,
        orbox=ScenarioReport(llm_sha256=llm.sha256, model_output=note.model_output, dropped=note.dropped,
                             restored=note.restored, unused_facts=note.unused_facts),
        usage=TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                         total_tokens=usage.prompt_tokens + usage.completion_tokens))
    draft_sha256, draft_chars = prompt_digest(json.loads(response.model_dump_json(include={"sections"})))
    ctx.recorder.finish(record, 200, draft_sha256=draft_sha256, draft_chars=draft_chars,
                        model_output=note.model_output, dropped=len(note.dropped), restored=len(note.restored),
                        unused=len(note.unused_facts), outside_llm_ms=round(outside * 1e3, 3),
                        dropped_problems=sorted({problem.split(":")[0] for item in note.dropped
                                                 for problem in item.problems}),
                        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
    return JSONResponse(response.model_dump(mode="json"), headers={**llm.headers(), "X-Request-Id": record.id})
