"""Gate arithmetic, calibration parsing and the ISA -> INT8 scheme rules."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from hw_profiles import load_profile
from quantize.encoder.calibration import load_calibration
from quantize.encoder.gates import TIE_MARGIN, kendall_tau, same_top_k
from quantize.encoder.quantize import Int8Recipe, fallback_chain, recipe_for_profile
from quantize.encoder.source import EncoderInputError


def _tau_by_counting(x, y):
    pairs = list(itertools.combinations(range(len(x)), 2))
    concordant = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) > 0 for i, j in pairs)
    discordant = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) < 0 for i, j in pairs)
    return (concordant - discordant) / len(pairs)


def test_kendall_tau_extremes_and_counting():
    x = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    assert kendall_tau(x, x) == 1.0
    assert kendall_tau(x, -x) == -1.0
    y = np.array([0.2, 0.4, 0.5, 0.8, 0.6])  # one swapped pair of ten
    assert kendall_tau(x, y) == pytest.approx(_tau_by_counting(x, y)) == pytest.approx(0.8)


def test_top_k_swap_counts_only_beyond_tie_margin():
    sims = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.5 - TIE_MARGIN / 2, 0.1])
    ref = np.array([0, 1, 2, 3, 4])
    assert same_top_k(sims, ref, np.array([0, 1, 2, 3, 5]))  # 4 and 5 are a tie in FP32
    assert not same_top_k(sims, ref, np.array([0, 1, 2, 3, 6]))  # 6 is far below


@pytest.mark.parametrize(("name", "scheme"), [("server-avx512-vnni", "u8s8"), ("mini-avx2", "u8u8"),
                                              ("arm64-rk3588", "u8s8"), ("core-ultra-npu", "qdq_s8s8")])
def test_shipped_profiles_map_to_their_scheme(name, scheme):
    recipe = recipe_for_profile(load_profile(name))
    assert recipe == Int8Recipe(scheme=scheme, per_channel=True)


def test_fallback_order_is_reduce_range_then_u8u8():
    chain = fallback_chain(Int8Recipe("u8s8", True))
    assert [r.scheme for r in chain] == ["u8s8", "reduce_range", "u8u8"]
    assert [r.scheme for r in fallback_chain(Int8Recipe("u8u8", True))] == ["u8u8", "reduce_range"]


def _profile(arch, flags, scheme):
    return SimpleNamespace(name="custom", cpu=SimpleNamespace(arch=arch, isa_flags=flags),
                           encoder=SimpleNamespace(int8_scheme=scheme, per_channel=True))


@pytest.mark.parametrize(("arch", "flags", "scheme", "message"), [
    ("x86_64", ["avx2", "avx512_vnni"], "none", "has no INT8 scheme"),
    ("x86_64", ["sse4_2"], "u8u8", "has no INT8 scheme"),
    ("x86_64", ["avx2", "avx512f"], "u8s8", "needs VNNI"),
    ("riscv64", [], "u8s8", "cpu.arch must be"),
])
def test_isa_without_a_usable_int8_scheme_is_refused(arch, flags, scheme, message):
    with pytest.raises(EncoderInputError, match=message):
        recipe_for_profile(_profile(arch, flags, scheme))


def test_calibration_text_and_jsonl(tmp_path):
    text = tmp_path / "c.txt"
    text.write_text("first line\n\n  second  \n", encoding="utf-8")
    assert load_calibration(text, "embedding") == ["first line", "second"]
    pairs = tmp_path / "c.jsonl"
    pairs.write_text('{"query": "q1", "document": "d1"}\n{"query": "q2", "document": "d2"}\n', encoding="utf-8")
    assert load_calibration(pairs, "reranker") == [("q1", "d1"), ("q2", "d2")]


@pytest.mark.parametrize(("name", "content", "task", "message"), [
    ("empty.txt", b"", "embedding", "calibration file is empty"),
    ("blank.jsonl", b"\n  \n", "embedding", "calibration file is empty"),
    ("bad.jsonl", b'{"text": "ok"}\n{"text": \n', "embedding", r"bad.jsonl:2: not valid JSON"),
    ("field.jsonl", b'{"txt": "x"}\n', "embedding", r"field.jsonl:1: field 'text' must be a non-empty string"),
    ("list.jsonl", b'["x"]\n', "embedding", "expected a JSON object"),
    ("pairs.txt", b"query without a tab\n", "reranker", r"pairs.txt:1: expected 'query<TAB>document'"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), "embedding", "must be UTF-8"),
])
def test_malformed_calibration_names_file_and_line(tmp_path, name, content, task, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EncoderInputError, match=message):
        load_calibration(path, task)
