"""Request bodies of the OpenAI-compatible endpoints (a strict subset: unknown fields are a 400).

Bounds here are the protocol's; the model's context length is checked by the worker, which
answers with a typed `context_length_exceeded` error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.grounding import KbCitation, KbCitationAnnotation, Mode, StatementCheck
from appliance.readiness import NotReady
from appliance.scenarios.drafting import DroppedItem, NoteSection, UnusedFact
from appliance.scenarios.triage import DroppedGuidance, GuidanceItem
from knowledge_base.answerability import Answerability

MAX_STOP = 4
MAX_EMBED_INPUTS = 256
MAX_QUERY_CHARS = 4096
MAX_KB_TOP_K = 100  # knowledge_base.search.MAX_TOP_K
MAX_RERANK_DOCUMENTS = 256
MAX_FACTS = 64
MAX_FACT_CHARS = 1000  # a dictated finding, not a pasted document
MAX_COMPLAINT_CHARS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


MAX_SCHEMA_CHARS = 32768  # a response schema's JSON; bounds the grammar compiled from it


class JsonSchemaFormat(_Strict):
    """OpenAI's `response_format.json_schema`: the output is grammar-constrained to `schema`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = Field(None, max_length=1024)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = Field(None, description="accepted for compatibility: the grammar always holds the "
                                                  "output to the schema")


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = Field(None, description="required with type json_schema, only then")

    @model_validator(mode="after")
    def _schema_iff_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type 'json_schema' and allowed only with it")
        return self


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class _Sampling(_Strict):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    user: str | None = Field(None, max_length=256)

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


class OrboxOptions(_Strict):
    """The optional `orbox` object of a `kb:<name>` chat request (send it with the openai client's extra_body)."""

    mode: Literal["answer", "quote"] = Field("answer", description="answer: statements written by the LLM, each "
                                             "checked against the sentences it cites; quote: verbatim source "
                                             "sentences, no LLM")


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    response_format: ResponseFormat | None = None
    orbox: OrboxOptions | None = Field(None, description="only for model kb:<name>")


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(min_length=1)
    max_tokens: int | None = Field(16, ge=1, le=32768)  # OpenAI's default for /v1/completions

    def prompt_text(self) -> str | None:
        """The single prompt, or None when a list of several was sent (one prompt per request here)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt[0] if len(self.prompt) == 1 else None


class EmbeddingRequest(_Strict):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(None, max_length=256)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class KbSearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(5, ge=1, le=MAX_KB_TOP_K)


class RerankRequest(_Strict):
    """llama.cpp server's and Cohere's rerank request."""

    model: str = Field(min_length=1, max_length=256)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    documents: list[str] = Field(min_length=1, max_length=MAX_RERANK_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


class FactIn(_Strict):
    id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    text: str = Field(min_length=1, max_length=MAX_FACT_CHARS, pattern=r"\S")


class ScenarioRequest(_Strict):
    """A scenario's input: the doctor's facts, each with an id the draft cites, and the draft's language."""

    facts: list[FactIn] = Field(min_length=1, max_length=MAX_FACTS)
    language: Literal["zh", "en"]

    @field_validator("facts")
    @classmethod
    def _unique_ids(cls, facts: list[FactIn]) -> list[FactIn]:
        repeated = sorted(fact_id for fact_id, count in Counter(fact.id for fact in facts).items() if count > 1)
        if repeated:
            raise ValueError(f"fact ids must be unique; repeated: {repeated}")
        return facts


class TriageRequest(_Strict):
    """A complaint in the patient's or the nurse's words, and the KB holding the hospital's triage rules."""

    complaint: str = Field(min_length=1, max_length=MAX_COMPLAINT_CHARS, pattern=r"\S")
    language: Literal["zh", "en"]
    kb: str | None = Field(None, min_length=1, max_length=67, description="the KB (kb:<name> or <name>); may be "
                           "left out when the box serves exactly one")


# --------------------------------------------------------------------------- responses
# Built by the routes and declared in the OpenAPI document, so a client generator and schemathesis see
# the shapes the box really answers with.


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class TokenUsage(EmbeddingUsage):
    completion_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: str


class _Answer(BaseModel):
    id: str
    created: int
    model: str
    system_fingerprint: str = Field(description="orbox:<profile>:<artifact sha256>")
    usage: TokenUsage


class ChatCompletion(_Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class GroundedMessage(BaseModel):
    """A grounded answer: `content` and its citations, or a `refusal` (then `content` is null, `annotations` empty)."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None
    annotations: list[KbCitationAnnotation]


class GroundedChoice(BaseModel):
    index: int = 0
    message: GroundedMessage
    logprobs: None = None
    finish_reason: str


class RetrievedChunk(BaseModel):
    chunk_id: int
    score: float


class GroundingReport(BaseModel):
    """How a grounded answer came about: the KB and LLM, the chunks retrieved, the gate and the checker's verdicts."""

    mode: Mode
    kb_sha256: str
    llm_sha256: str | None = Field(description="null when no LLM ran (quote mode, or a refusal by the gate)")
    retrieved: list[RetrievedChunk]
    answerability: Answerability
    verdicts: list[StatementCheck]
    refusal_code: str | None


class GroundedCompletion(_Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[GroundedChoice]
    orbox: GroundingReport


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: str


class TextCompletion(_Answer):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or little-endian float32 in base64")


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class KbSearchResult(BaseModel):
    """One chunk; `text == document_text[start_char:end_char]` of document `doc_id` as read."""

    chunk_id: int
    doc_id: str
    doc_title: str
    section: str
    page: int | None
    text: str
    start_char: int
    end_char: int
    score: float


class KbSearchResults(BaseModel):
    object: Literal["list"] = "list"
    model: str = Field(description="kb:<name>")
    kb_sha256: str
    results: list[KbSearchResult]


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    model: str
    results: list[RerankResult]
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    """One served model, with what a clinician's audit needs: the artifact, its sha256 and the profile."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: Literal["orbox"] = "orbox"
    role: str
    artifact: str
    sha256: str
    quant_type: str | None
    profile: str
    ready: bool
    n_ctx: int | None
    dim: int | None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ScenarioReport(BaseModel):
    """What the server did to the model's draft: items dropped by the checker, facts restored, facts unused."""

    llm_sha256: str
    model_output: Literal["valid", "truncated", "invalid"] = Field(
        description="truncated: the token limit cut the model's JSON off, and the items it completed were kept; "
                    "invalid: it could not be read, so the note holds only the restored allergy/denial facts")
    dropped: list[DroppedItem]
    restored: list[str] = Field(description="ids of allergy/denial facts put back verbatim")
    unused_facts: list[UnusedFact]


class ScenarioDraft(BaseModel):
    """A checked draft (admission note or patient brief): its sections, then what the server did to it."""

    id: str
    object: Literal["scenario.admission_note", "scenario.patient_brief"]
    model: str
    system_fingerprint: str
    language: Literal["zh", "en"]
    sections: list[NoteSection]
    orbox: ScenarioReport
    usage: TokenUsage


class TriageRule(BaseModel):
    """A rule of the hospital's guidance the result refers to, verbatim, with where it stands in its document."""

    id: str
    text: str
    red_flag: bool
    departments: list[str]
    kb_citation: KbCitation


class TriageReport(BaseModel):
    """How the result came about: the KB and LLM, the gate, and what the server refused of the model's output."""

    kb_sha256: str
    llm_sha256: str | None = Field(description="null when no LLM ran (a red flag decided, or no rule applies)")
    model_output: Literal["valid", "invalid", "not_run"]
    model_department: str | None = Field(description="the department the model chose when it was not delivered "
                                                     "(no rule it marked as applying names it, or a red flag decided)")
    dropped: list[DroppedGuidance]
    answerability: Answerability


class TriageGuidance(BaseModel):
    """Triage guidance: a department only from the hospital's rules, never a diagnosis."""

    id: str
    object: Literal["scenario.triage"] = "scenario.triage"
    model: str
    system_fingerprint: str
    language: Literal["zh", "en"]
    department: str | None = Field(description="null: no rule applies and no red flag fired; the triage desk decides")
    urgency: Literal["emergency", "routine", "undetermined"]
    decided_by: Literal["red_flag", "rule", "none"]
    department_rules: list[str] = Field(description="ids of the rules that send the complaint to `department`")
    guidance: list[GuidanceItem]
    red_flags_to_check: list[str] = Field(description="ids of red-flag rules sharing a symptom with the complaint "
                                                      "that did not fire: for the triage nurse to ask about")
    rules: list[TriageRule]
    refusal: str | None
    orbox: TriageReport
    usage: TokenUsage


class HealthStatus(BaseModel):
    """A health probe's answer; public, so a reason class and nothing that could reveal a request or a key."""

    status: Literal["live", "ready", "not_ready"]
    reason: NotReady | None = Field(None, description="why not ready (only then); the request may be retried "
                                                      "after the Retry-After header's seconds")


def json_or_stream(model: Any) -> dict[int | str, dict]:
    """OpenAPI entry of an endpoint that answers JSON, or an SSE stream when the request says `stream: true`."""
    return {200: {"model": model, "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
