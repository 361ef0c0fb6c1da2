"""Clinical scenarios: POST /v1/scenarios/admission-note, /patient-brief and /triage (appliance.scenarios does
the work).

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
from appliance.api.schemas import (
    ScenarioDraft,
    ScenarioReport,
    ScenarioRequest,
    TokenUsage,
    TriageGuidance,
    TriageReport,
    TriageRequest,
    TriageRule,
)
from appliance.knowledge_bases import MODEL_PREFIX, ServedKb
from appliance.protocol import Usage
from appliance.scenarios import drafting, triage
from appliance.scenarios.admission_note import ADMISSION_NOTE
from appliance.scenarios.drafting import DraftSpec
from appliance.scenarios.facts import Fact
from appliance.scenarios.patient_brief import PATIENT_BRIEF
from knowledge_base import KnowledgeBaseError

router = APIRouter(tags=["scenarios"])
_RED_FLAGS: dict[str, triage.RedFlagIndex] = {}  # by KB sha256: read once per KB


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
    note = drafting.assemble(spec, facts, body.language, *drafting.read(spec, output, facts))
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


@router.post("/v1/scenarios/triage", responses={200: {"model": TriageGuidance}})
async def triage_guidance(body: TriageRequest, request: Request, ctx: Ctx, caller: AuthedCaller) -> Response:
    """From a complaint, the department and the hospital's guidance: every rule cited from the KB, a red flag
    sending the patient to the emergency department whatever the model writes, and never a diagnosis."""
    record = RequestRecord("/v1/scenarios/triage", caller.name)
    digest, length = prompt_digest(body.complaint)
    record.set(language=body.language, complaint_sha256=digest, complaint_chars=length)
    try:
        served = _triage_kb(ctx, body.kb)
        record.set(kb_sha256=served.kb.sha256)
        index = _RED_FLAGS.get(served.kb.sha256) or await served.call(triage.RedFlagIndex)
        _RED_FLAGS[served.kb.sha256] = index
        started = time.perf_counter()
        try:
            evidence = await served.call(lambda kb: triage.gather(kb, index, body.complaint, body.language))
        except KnowledgeBaseError as exc:
            raise ApiError(400, f"complaint: not a usable query ({exc})", code="invalid_request",
                           param="complaint") from exc
        outside = time.perf_counter() - started
        llm_sha256, chosen, usage = None, None, Usage(0, 0)
        if triage.needs_model(evidence):
            llm = ctx.served_llm()
            llm_sha256 = llm.sha256
            record.set(artifact_sha256=llm_sha256)
            output, usage = await generate_json(ctx, request, caller, record,
                                                triage.prompt_messages(evidence, body.complaint),
                                                triage.output_schema(evidence), triage.MAX_TOKENS)
            chosen = triage.parse(output, evidence)
    except ApiError as error:
        ctx.recorder.finish(record, error.status, error=error.code)
        return error.response({"X-Request-Id": record.id})
    started = time.perf_counter()
    result = triage.assemble(evidence, chosen, llm_sha256 is not None)
    outside += time.perf_counter() - started
    response = TriageGuidance(
        id=f"triage-{record.id}", model=served.model_id, system_fingerprint=f"orbox:{ctx.profile}:{served.kb.sha256}",
        language=result.language, department=result.department, urgency=result.urgency,
        decided_by=result.decided_by, department_rules=result.department_rules, guidance=result.guidance,
        red_flags_to_check=result.red_flags_to_check, refusal=result.refusal,
        rules=[TriageRule(id=rule.id, text=rule.sentence.text, red_flag=rule.reading.red_flag,
                          departments=list(rule.reading.departments), kb_citation=rule.citation())
               for rule in result.rules],
        orbox=TriageReport(kb_sha256=served.kb.sha256, llm_sha256=llm_sha256, model_output=result.model_output,
                           model_department=result.model_department, dropped=result.dropped,
                           answerability=evidence.answerability),
        usage=TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                         total_tokens=usage.prompt_tokens + usage.completion_tokens))
    ctx.recorder.finish(record, 200, urgency=result.urgency, decided_by=result.decided_by,
                        department_rules=result.department_rules, cited_rules=[
                            {"chunk_id": rule.sentence.chunk_id, "sentence_id": rule.sentence.sentence_id}
                            for rule in result.rules],
                        model_output=result.model_output, dropped=len(result.dropped),
                        dropped_problems=sorted({problem.split(":")[0] for item in result.dropped
                                                 for problem in item.problems}),
                        outside_llm_ms=round(outside * 1e3, 3), prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens)
    headers = {"X-Orbox-Kb-Sha256": served.kb.sha256, "X-Orbox-Profile": ctx.profile, "X-Request-Id": record.id,
               **({"X-Orbox-Artifact-Sha256": llm_sha256} if llm_sha256 else {})}
    return JSONResponse(response.model_dump(mode="json"), headers=headers)


def _triage_kb(ctx: ApiContext, name: str | None) -> ServedKb:
    """The named KB, or the only one served; a 400 naming `kb` when the choice is not clear."""
    if name is not None:
        return ctx.kb(name.removeprefix(MODEL_PREFIX), "kb")
    served = ctx.supervisor.kbs.served_ids()
    if len(served) != 1:
        raise ApiError(400, f"kb: expected the knowledge base holding the triage rules, since this box serves "
                       f"{len(served)} ({', '.join(served) or 'none; start `orbox serve` with --kb KB_DIR'})",
                       code="invalid_request", param="kb")
    return ctx.kb(served[0].removeprefix(MODEL_PREFIX), "kb")
