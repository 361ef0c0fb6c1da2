"""The official `openai` client against a real `orbox serve`: chat, streaming, completions, embeddings,
models, determinism and traceability, and the error shapes."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import openai
import pytest
from api_data.fixtures import EMBEDDING_MODEL, LLM_MODEL, Server

CHAT = [{"role": "system", "content": "You are a concise OR assistant."},
        {"role": "user", "content": "Patient 63y, BP 90/60 after insufflation. Next step?"}]


def _sha256_of(server: Server, role: str) -> str:
    with server.client() as client:
        return next(m for m in client.get("/v1/models").json()["data"] if m["role"] == role)["sha256"]


def test_models_name_artifact_sha256_profile_and_quant(api_server: Server, api_bundle) -> None:
    manifest = json.loads((api_bundle / "manifest.json").read_text())
    models = {m.id: m for m in api_server.openai().models.list().data}
    assert set(models) == {LLM_MODEL, EMBEDDING_MODEL}
    llm, encoder = models[LLM_MODEL].model_dump(), models[EMBEDDING_MODEL].model_dump()
    assert llm["sha256"] == manifest["artifacts"]["llm/tiny-q8_0.gguf"]["sha256"]
    assert llm["quant_type"] == "q8_0" and llm["profile"] == "dev" and llm["ready"] is True
    onnx = manifest["artifacts"]["encoder/embedding/model.onnx"]
    assert encoder["sha256"] == onnx["sha256"] and encoder["quant_type"] == onnx["quant_type"]
    assert encoder["profile"] == "dev" and encoder["dim"] == 384


def test_chat_non_streaming_is_traceable(api_server: Server) -> None:
    raw = api_server.openai().chat.completions.with_raw_response.create(model=LLM_MODEL, messages=CHAT, max_tokens=12)
    completion = raw.parse()
    sha256 = _sha256_of(api_server, "llm")
    assert raw.headers["x-orbox-artifact-sha256"] == sha256 and raw.headers["x-orbox-profile"] == "dev"
    assert completion.system_fingerprint == f"orbox:dev:{sha256}"
    assert completion.model == LLM_MODEL and completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert completion.usage.completion_tokens == 12 and choice.message.content
    assert completion.usage.prompt_tokens > 10 and completion.usage.total_tokens == completion.usage.prompt_tokens + 12


def test_chat_streaming_matches_non_streaming_and_ends_with_done(api_server: Server) -> None:
    client = api_server.openai()
    whole = client.chat.completions.create(model=LLM_MODEL, messages=CHAT, max_tokens=10).choices[0].message.content
    chunks = list(client.chat.completions.create(model=LLM_MODEL, messages=CHAT, max_tokens=10, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10 and not chunks[-1].choices
    assert all(c.system_fingerprint == f"orbox:dev:{_sha256_of(api_server, 'llm')}" for c in chunks)
    body = {"model": LLM_MODEL, "messages": CHAT, "max_tokens": 3, "stream": True}
    with api_server.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


def test_same_request_gives_the_same_answer_20_times(api_server: Server) -> None:
    client = api_server.openai()
    answers = {client.chat.completions.create(model=LLM_MODEL, messages=CHAT, max_tokens=24).choices[0]
               .message.content.encode() for _ in range(20)}
    assert len(answers) == 1
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=LLM_MODEL, messages=CHAT, max_tokens=24, stream=True) if c.choices)
    assert {streamed.encode()} == answers


def test_sampling_parameters_seed_temperature_top_p(api_server: Server) -> None:
    client = api_server.openai()

    def sample(seed: int) -> str:
        return client.completions.create(model=LLM_MODEL, prompt="The surgeon", max_tokens=24, temperature=1.5,
                                         top_p=0.95, seed=seed).choices[0].text

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3)}) > 1  # sampling is really on
    greedy = client.completions.create(model=LLM_MODEL, prompt="The surgeon", max_tokens=24).choices[0].text
    assert greedy == client.completions.create(model=LLM_MODEL, prompt="The surgeon", max_tokens=24,
                                               temperature=0).choices[0].text


def test_stop_sequences_and_max_tokens(api_server: Server) -> None:
    client = api_server.openai()
    full = client.completions.create(model=LLM_MODEL, prompt="Vitals:", max_tokens=32).choices[0].text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop.strip(), f"need a printable stop string, model wrote {full!r}"
    cut = client.completions.create(model=LLM_MODEL, prompt="Vitals:", max_tokens=32, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and full.startswith(cut.text)
    assert len(cut.text) < len(full)
    short = client.completions.create(model=LLM_MODEL, prompt="Vitals:", max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"


def test_json_object_response_format_is_grammar_constrained(api_server: Server) -> None:
    completion = api_server.openai().chat.completions.create(
        model=LLM_MODEL, messages=[{"role": "user", "content": "Give the vitals as JSON."}], max_tokens=24,
        response_format={"type": "json_object"})
    assert completion.choices[0].message.content.lstrip().startswith("{")


VITALS_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["rhythm", "stable", "note"],
                 "properties": {"rhythm": {"type": "string", "enum": ["sinus", "af", "other"]},
                                "stable": {"type": "boolean"},
                                "note": {"type": "string", "maxLength": 12}}}


def test_json_schema_response_format_output_validates_against_the_schema(api_server: Server) -> None:
    completion = api_server.openai().chat.completions.create(
        model=LLM_MODEL, messages=[{"role": "user", "content": "Rhythm and stability as JSON."}], max_tokens=200,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "vitals", "schema": VITALS_SCHEMA, "strict": True}})
    assert completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(completion.choices[0].message.content), VITALS_SCHEMA)


@pytest.mark.parametrize(("response_format", "param"), [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "https://example.org/s.json"}}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(("}}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema"}, "response_format"),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema.schema"),
])
def test_a_schema_llama_cpp_cannot_compile_is_a_400_naming_the_field(api_server: Server, response_format: dict,
                                                                      param: str) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        api_server.openai().chat.completions.create(model=LLM_MODEL, messages=CHAT, max_tokens=4,
                                                    response_format=response_format)
    assert bad.value.body["param"] == param and bad.value.body["code"] == "invalid_request"


def test_embeddings_float_and_base64(api_server: Server) -> None:
    client = api_server.openai()
    texts = ["The patient is bleeding heavily.", "There is a severe haemorrhage.", "The weather is sunny today."]
    default = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # the client asks for base64
    floats = client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    a = np.array([d.embedding for d in default.data])
    b = np.array([d.embedding for d in floats.data])
    assert a.shape == (3, 384) and np.allclose(a, b, atol=1e-6)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-3)
    similar, unrelated = a[0] @ a[1], a[0] @ a[2]
    assert similar > unrelated + 0.2  # a real sentence encoder, not noise
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="x")
    assert raw.headers["x-orbox-artifact-sha256"] == _sha256_of(api_server, "embedding")


def test_errors_have_the_openai_shape(api_server: Server) -> None:
    with pytest.raises(openai.AuthenticationError) as bad_key:
        openai.OpenAI(base_url=api_server.url + "/v1", api_key="orbox-not-a-key", max_retries=0).models.list()
    assert bad_key.value.status_code == 401 and bad_key.value.body["type"] == "authentication_error"
    client = api_server.openai()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4", messages=CHAT)
    assert unknown.value.body["code"] == "model_not_found" and LLM_MODEL in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model=LLM_MODEL, prompt="blood pressure " * 3000, max_tokens=4)
    assert too_long.value.body["code"] == "context_length_exceeded"
    assert too_long.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as bad_param:
        client.chat.completions.create(model=LLM_MODEL, messages=CHAT, temperature=5)
    assert bad_param.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as unknown_param:
        client.chat.completions.create(model=LLM_MODEL, messages=CHAT, extra_body={"mirostat": 2})
    assert "mirostat" in unknown_param.value.body["message"]
    with pytest.raises(openai.BadRequestError) as streamed_too_long:
        list(client.chat.completions.create(model=LLM_MODEL, messages=[{"role": "user", "content": "pain " * 5000}],
                                            stream=True))
    assert streamed_too_long.value.body["code"] == "context_length_exceeded"
