"""The memory-fit planner against real public model configs and the shipped profiles."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hw_profiles import PlanError, list_profiles, load_profile, plan_llm
from hw_profiles.planner import MIB, ModelConfigError, count_parameters
from orbox.cli import cli

# config.json of the published checkpoints (fields that matter to the shape; values as published).
QWEN25_7B_INSTRUCT = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 3584,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 152064,
}
LLAMA31_8B_INSTRUCT = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": False,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256,
}
QWEN25_15B_INSTRUCT = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 1536,
    "intermediate_size": 8960, "max_position_embeddings": 32768, "max_window_layers": 21,
    "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "use_sliding_window": False, "vocab_size": 151936,
}
QWEN3_4B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 2560, "intermediate_size": 9728, "max_position_embeddings": 40960,
    "max_window_layers": 36, "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 151936,
}
MISTRAL_7B_V03 = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768,
    "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 32768,
}
# Sizes from the model cards (Hugging Face's parameter count for Llama 3.1 and Mistral).
PUBLISHED = [
    ("Qwen2.5-7B-Instruct", QWEN25_7B_INSTRUCT, 7.61e9),
    ("Llama-3.1-8B-Instruct", LLAMA31_8B_INSTRUCT, 8.03e9),
    ("Qwen2.5-1.5B-Instruct", QWEN25_15B_INSTRUCT, 1.54e9),
    ("Qwen3-4B", QWEN3_4B, 4.0e9),
    ("Mistral-7B-v0.3", MISTRAL_7B_V03, 7.25e9),
]
MODELS = {name: config for name, config, _ in PUBLISHED}


@pytest.mark.parametrize(("name", "config", "published"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_parameter_count_matches_the_published_size(name, config, published):
    assert count_parameters(config) == pytest.approx(published, rel=0.01)


def test_llama_count_is_exact():
    # Meta's published figure for Llama-3.1-8B is 8,030,261,248 parameters.
    assert count_parameters(LLAMA31_8B_INSTRUCT) == 8_030_261_248


def test_rows_follow_the_memory_formulae():
    """Weights = params x bpw / 8; KV = 2 x layers x ctx x parallel x kv_heads x head_dim x 2 bytes (f16)."""
    profile = load_profile("server-avx512-vnni")
    plan = plan_llm(LLAMA31_8B_INSTRUCT, profile)
    assert plan.params == 8_030_261_248
    assert plan.row("q8_0").weight_bytes == int(8_030_261_248 * 8.5 / 8)
    assert plan.row("q4_k_m").weight_bytes == int(8_030_261_248 * 4.89 / 8)
    kv = 2 * 32 * 8192 * 4 * 8 * 128 * 2
    assert all(row.kv_bytes == kv for row in plan.rows)
    for row in plan.rows:
        assert row.total_bytes == row.weight_bytes + row.kv_bytes + row.overhead_bytes
        assert row.overhead_bytes >= 128 * MIB
        assert row.fits == (row.total_bytes <= 36864 * MIB)


def test_quantized_kv_cache_is_smaller():
    arm = load_profile("arm64-rk3588")  # kv_cache_type q8_0: 34 bytes per 32 elements
    plan = plan_llm(QWEN25_7B_INSTRUCT, arm)
    assert plan.row("q4_k_m").kv_bytes == int(2 * 28 * 4096 * 1 * 4 * 128 * 34 / 32)


# What each SKU should run, reasoned from its budget (36 / 16 / 16 / 6 / 16 / 3 GiB) and preference order.
EXPECTED_CHOICE = {
    "server-avx512-vnni": {model: "q8_0" for model in MODELS},
    "jetson-orin": {model: "q8_0" for model in MODELS},
    "core-ultra-npu": {model: "q8_0" for model in MODELS},
    # mini-avx2 prefers q6_k over q8_0 (bandwidth-bound DDR4) and everything fits its 16 GiB.
    "mini-avx2": {model: "q6_k" for model in MODELS},
    # 6 GiB: a 7-8B model's q6_k weights alone take ~6 GiB, so those drop to q5_k_m; small ones keep q6_k.
    "arm64-rk3588": {"Qwen2.5-7B-Instruct": "q5_k_m", "Llama-3.1-8B-Instruct": "q5_k_m",
                     "Qwen2.5-1.5B-Instruct": "q6_k", "Qwen3-4B": "q6_k", "Mistral-7B-v0.3": "q6_k"},
    # 3 GiB: only the 1.5B model fits; Qwen3-4B at q4_k_m is 2.3 GiB of weights + 0.56 GiB of KV + overhead.
    "dev": {"Qwen2.5-1.5B-Instruct": "q8_0"},
}


@pytest.mark.parametrize("profile_name", sorted(EXPECTED_CHOICE))
def test_chosen_types_make_sense_for_each_shipped_profile(profile_name):
    profile = load_profile(profile_name)
    for model, config in MODELS.items():
        expected = EXPECTED_CHOICE[profile_name].get(model)
        if expected is None:
            with pytest.raises(PlanError, match="over the LLM budget"):
                plan_llm(config, profile)
            continue
        plan = plan_llm(config, profile)
        assert plan.chosen_type == expected, (model, plan.reason)
        chosen = profile.llm.gguf_types.index(plan.chosen_type)
        assert all(not row.fits for row in plan.rows[:chosen]), "a more preferred type that fits was skipped"
        assert plan.row(plan.chosen_type).fits


def test_expected_choices_cover_every_shipped_profile():
    assert sorted(EXPECTED_CHOICE) == list_profiles()


def test_more_budget_never_means_a_worse_type():
    dev = load_profile("dev")
    chosen = []
    for budget_mb in range(3000, 12001, 500):
        memory = dev.memory.model_copy(update={"llm_budget_mb": budget_mb, "total_mb": 16384})
        try:
            chosen.append(plan_llm(QWEN25_7B_INSTRUCT, dev.model_copy(update={"memory": memory})).chosen_type)
        except PlanError:
            chosen.append(None)
    ranks = [-1 if t is None else 3 - dev.llm.gguf_types.index(t) for t in chosen]
    assert ranks == sorted(ranks) and ranks[0] == -1 and chosen[-1] == "q8_0"


def test_longer_context_costs_kv_and_can_push_below_the_floor():
    arm = load_profile("arm64-rk3588")
    short = plan_llm(LLAMA31_8B_INSTRUCT, arm, context=2048)
    longer = plan_llm(LLAMA31_8B_INSTRUCT, arm, context=8192)
    assert longer.row("q4_k_m").kv_bytes == 4 * short.row("q4_k_m").kv_bytes
    with pytest.raises(PlanError) as caught:
        plan_llm(LLAMA31_8B_INSTRUCT, arm, context=32768)
    message = str(caught.value)
    assert "does not fit profile 'arm64-rk3588'" in message and "floor type q4_k_m" in message
    over = caught.value.plan.row("q4_k_m").total_bytes - 6144 * MIB
    expected = f"{over / MIB:,.0f} MiB ({100 * over / (6144 * MIB):.1f} %) over the LLM budget of 6,144 MiB"
    assert expected in message
    assert caught.value.plan.chosen_type is None


def test_context_beyond_the_model_is_refused():
    with pytest.raises(PlanError, match="context 65536 is longer than the model's max_position_embeddings"):
        plan_llm(MISTRAL_7B_V03, load_profile("server-avx512-vnni"), context=65536)


@pytest.mark.parametrize(("change", "message"), [
    ({"hidden_size": None}, "field 'hidden_size': expected a positive integer, found None"),
    ({"num_hidden_layers": "28"}, "field 'num_hidden_layers': expected a positive integer, found '28'"),
    ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, "field 'architectures': expected one of"),
    ({"architectures": 5}, "field 'architectures': expected a list of class names .* found 5"),
    ({"architectures": [["LlamaForCausalLM"]]}, "field 'architectures': expected a list of class names"),
])
def test_bad_model_config_names_the_field(change, message):
    with pytest.raises(ModelConfigError, match=message):
        plan_llm({**QWEN25_7B_INSTRUCT, **change}, load_profile("dev"))


def test_cli_plan_prints_the_table_and_reason(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN25_7B_INSTRUCT))
    result = CliRunner().invoke(cli, ["profile", "plan", "--model-config", str(config),
                                      "--profile", "arm64-rk3588"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("qwen2 model, 7,615,616,512 parameters (7.62 B); profile arm64-rk3588")
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {"q6_k", "q5_k_m", "q4_k_m"}
    assert rows["q6_k"].endswith("no") and rows["q5_k_m"].endswith("yes  <- chosen")
    assert lines[-1].startswith("reason: q5_k_m fits:") and "q6_k needs" in lines[-1]


def test_cli_plan_json_and_errors(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(QWEN3_4B))
    runner = CliRunner()
    ok = runner.invoke(cli, ["profile", "plan", "--model-config", str(config), "--profile", "jetson-orin",
                             "--context", "4096", "--json"])
    assert ok.exit_code == 0, ok.output
    document = json.loads(ok.output)
    assert document["chosen_type"] == "q8_0" and document["context"] == 4096
    assert [row["gguf_type"] for row in document["rows"]] == ["q8_0", "q6_k", "q5_k_m", "q4_k_m"]
    too_big = runner.invoke(cli, ["profile", "plan", "--model-config", str(config), "--profile", "dev"])
    assert too_big.exit_code == 1
    assert "error: qwen3 model with 4.02 B parameters does not fit" in too_big.output
    assert "<- chosen" not in too_big.output and "q4_k_m" in too_big.output
    (tmp_path / "broken.json").write_text("{not json")
    broken = runner.invoke(cli, ["profile", "plan", "--model-config", str(tmp_path / "broken.json"),
                                 "--profile", "dev"])
    assert broken.exit_code == 1
    assert broken.output.startswith(f"error: {tmp_path / 'broken.json'}: not valid JSON")
    (tmp_path / "gpt2.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    unknown = runner.invoke(cli, ["profile", "plan", "--model-config", str(tmp_path / "gpt2.json"),
                                  "--profile", "dev"])
    assert unknown.exit_code == 1
    assert unknown.output.startswith(f"error: {tmp_path / 'gpt2.json'}: config.json field 'architectures'")
    assert "Traceback" not in broken.output + unknown.output + too_big.output
