"""Bad input to `orbox quantize encoder`: a clear message naming what is wrong, exit 1, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from encoder_data.fixtures import profile_toml

from orbox.cli import cli

pytestmark = pytest.mark.xdist_group("encoder_tiny")


def run(model, out, *extra, profile="server-avx512-vnni"):
    args = ["quantize", "encoder", "--model", str(model), "--profile", str(profile), "--out", str(out), *extra]
    return CliRunner().invoke(cli, args)


def assert_refused(result, out, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output
    assert not out.exists()


def test_decoder_model_is_not_an_encoder(tmp_path):
    model = tmp_path / "llama"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    out = tmp_path / "out"
    assert_refused(run(model, out), out, "config.json", "model_type 'llama'", "is not a supported encoder",
                   "bert, roberta, xlm-roberta")


def test_bert_with_lm_head_is_not_an_encoder(tmp_path):
    model = tmp_path / "bert-lm"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertLMHeadModel"],
                                                   "is_decoder": True}))
    out = tmp_path / "out"
    assert_refused(run(model, out), out, "BertLMHeadModel", "is not a supported encoder")


def test_architectures_not_a_list(tmp_path):
    model = tmp_path / "odd"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": 5}))
    out = tmp_path / "out"
    assert_refused(run(model, out), out, "config.json", "field 'architectures' must be a list", "found 5")


@pytest.mark.parametrize(("name", "content", "fragments"), [
    ("sentence_bert_config.json", {"max_seq_length": "abc"}, ["field 'max_seq_length' must be a positive integer",
                                                              "found 'abc'"]),
    ("sentence_bert_config.json", [1], ["sentence_bert_config.json", "JSON object", "found list"]),
    ("1_Pooling/config.json", [1], ["1_Pooling/config.json", "Pooling config", "found list"]),
])
def test_malformed_sentence_transformers_files(tiny_bert, tmp_path, name, content, fragments):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    (model / name).write_text(json.dumps(content))
    out = tmp_path / "out"
    assert_refused(run(model, out), out, *fragments)


def test_missing_tokenizer(tiny_bert, tmp_path):
    model = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_bert, model)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (model / name).unlink(missing_ok=True)
    out = tmp_path / "out"
    assert_refused(run(model, out), out, "missing tokenizer", "tokenizer.json")


def test_missing_config(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    assert_refused(run(tmp_path / "empty", out), out, "config.json: missing")


@pytest.mark.parametrize(("content", "fragments"), [
    (b"", ["calib.jsonl", "calibration file is empty"]),
    (b'{"text": "fine"}\n{"text": "unterminated\n', ["calib.jsonl:2", "not valid JSON"]),
    (b'{"sentence": "wrong field"}\n', ["calib.jsonl:1", "field 'text' must be a non-empty string"]),
])
def test_empty_or_malformed_calibration(tiny_bert, tmp_path, content, fragments):
    calibration = tmp_path / "calib.jsonl"
    calibration.write_bytes(content)
    out = tmp_path / "out"
    assert_refused(run(tiny_bert, out, "--calibration", str(calibration)), out, *fragments)


def test_profile_whose_isa_has_no_int8_scheme(tiny_bert, tmp_path):
    profile = profile_toml(tmp_path, "mini-avx2", int8_scheme="none")
    out = tmp_path / "out"
    assert_refused(run(tiny_bert, out, profile=profile), out, "int8_scheme is 'none'", "has no INT8 scheme",
                   "mini-avx2-custom")


def test_u8s8_profile_without_vnni(tiny_bert, tmp_path):
    profile = profile_toml(tmp_path, "mini-avx2", int8_scheme="u8s8")
    out = tmp_path / "out"
    assert_refused(run(tiny_bert, out, profile=profile), out, "VNNI", "u8u8", "reduce_range")


def test_unknown_profile(tiny_bert, tmp_path):
    out = tmp_path / "out"
    result = run(tiny_bert, out, profile="no-such-profile")
    assert result.exit_code == 1 and "no-such-profile" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_reranker_task_on_a_plain_encoder(tiny_bert, tmp_path):
    out = tmp_path / "out"
    assert_refused(run(tiny_bert, out, "--task", "reranker"), out, "--task reranker needs a",
                   "ForSequenceClassification")


def test_bundle_for_another_profile_is_not_touched(tiny_bert, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    manifest = {"schema": "orbox.bundle/1", "profile": "dev", "created": "x", "artifacts": {}, "sections": {}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = run(tiny_bert, out)
    assert result.exit_code == 1 and "bundle is for profile 'dev'" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_unreadable_sign_key(tiny_bert, tmp_path):
    key = tmp_path / "vendor.key"
    key.write_text("not a key")
    out = tmp_path / "out"
    assert_refused(run(tiny_bert, out, "--sign-key", str(key)), out, "vendor.key", "not an unencrypted PEM")
