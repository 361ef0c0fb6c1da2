"""The default gates judge what they exist for: healthy long-answer and reasoning models publish, a wrong
end-of-generation id is refused with the ids named (issue 18, part 1)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orbox.cli import cli
from primitives.artifacts import load_manifest
from quantize.llm.export import convert_checkpoint
from quantize.llm.gates.control_tokens import control_tokens_gate
from quantize.llm.gates.generation import llama_generations, transformers_generations
from quantize.llm.gates.generation_parity import generation_parity_gate
from quantize.llm.gates.result import Thresholds
from quantize.llm.gates.tokenizer_parity import CHAT_CASES, hf_chat_ids
from quantize.tiny_models import build_tiny_llm

pytestmark = pytest.mark.xdist_group("quantize_llm_chat_styles")
OLD_SMOKE_LIMIT = 48  # new tokens the removed smoke check allowed before an end-of-generation token


def _model(build_once, style):
    return build_once(f"tiny-llm-{style}", lambda d: build_tiny_llm(d, "qwen2", train_steps=200, style=style))


@pytest.fixture(scope="module")
def long_answer(build_once):
    return _model(build_once, "long")


@pytest.fixture(scope="module")
def reasoning(build_once):
    return _model(build_once, "reasoning")


def _publish(model_dir, out):
    args = ["quantize", "llm", "--model", str(model_dir), "--profile", "dev", "--out", str(out), "--types", "q8_0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return load_manifest(out)["sections"]["llm"]["gates"]


def test_default_gates_publish_a_long_answer_chat_model(long_answer, tmp_path):
    gates = _publish(long_answer, tmp_path / "bundle")
    catheter = gates["generation_parity"]["metrics"]["cases"][0]
    assert catheter["departs_at"] is None and catheter["new_tokens"] > OLD_SMOKE_LIMIT
    assert gates["control_tokens"]["verdict"] == "pass"
    assert gates["smoke"]["q8_0"]["verdict"] == "pass"


def test_default_gates_publish_a_reasoning_model_and_compare_its_thinking(reasoning, tmp_path):
    gates = _publish(reasoning, tmp_path / "bundle")
    assert set(gates["control_tokens"]["metrics"]["thinking_markers"]) == {"<think>", "</think>"}
    parity = gates["generation_parity"]["metrics"]
    assert parity["thinking_markers_compared"] >= 1
    assert all(case["departs_at"] is None or case["near_tie"] for case in parity["cases"])


def test_a_wrong_end_of_generation_id_is_refused_naming_both_ids(long_answer, tmp_path):
    import gguf
    from transformers import AutoTokenizer

    path = convert_checkpoint(long_answer, tmp_path / "f32.gguf", "f32").path
    hf = AutoTokenizer.from_pretrained(long_answer)
    prompts = [hf_chat_ids(hf, messages) for messages in CHAT_CASES]
    limit = 64
    reference = transformers_generations(long_answer, prompts, [hf.eos_token_id], limit)
    wrong = reference[0].tokens[20]  # a word of the long answer now ends generation in llama.cpp
    reader = gguf.GGUFReader(path, "r+")
    field = reader.fields[gguf.Keys.Tokenizer.EOS_ID]
    field.parts[field.data[0]][0] = wrong
    del reader

    verdict = control_tokens_gate(path, long_answer)
    assert not verdict.passed
    message = " ".join(verdict.problems)
    assert f"tokenizer.ggml.eos_token_id is {wrong} " in message
    assert f"{hf.eos_token_id} '<|im_end|>'" in message and "generation_config.json eos_token_id" in message

    found = llama_generations(path, prompts, limit, threads=1)
    parity = generation_parity_gate(reference, found, ["catheter", "fever", "paracetamol"], Thresholds(),
                                    lambda i: f"{i} {hf.convert_ids_to_tokens(i)!r}", {})
    stop = reference[0].tokens.index(wrong)
    assert not parity.passed
    assert f"'catheter': llama.cpp ends at new token {stop} ({wrong} " in parity.problems[0]
