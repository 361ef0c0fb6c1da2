"""Gate: the tokens that steer generation survive conversion: end-of-generation ids and thinking markers.

The source model says where an answer ends in two places: `generation_config.json` (`eos_token_id`, one id
or a list) and the tokenizer's `eos_token`. In the GGUF, llama.cpp stops at its end-of-generation set,
built from `tokenizer.ggml.eos_token_id`, `tokenizer.ggml.eot_token_id` and tokens it recognises by name.
Every id the source ends at must be in that set, and the ids the GGUF declares must be ones the source
ends at; otherwise llama.cpp runs on where the model stops, or cuts answers short. Extra ids llama.cpp
adds by name are reported, not judged. Reasoning models' `<think>` / `</think>` must keep their ids and
stay single tokens, or the box could not tell the reasoning from the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from quantize.llm.gates.result import GateResult
from quantize.llm.gates.runtime import is_end_of_generation, open_llama

THINKING_MARKERS = ("<think>", "</think>")
# The GGUF keys that declare an end of generation (llama.cpp adds name-matched tokens to these).
DECLARED_KEYS = (gguf.Keys.Tokenizer.EOS_ID, gguf.Keys.Tokenizer.EOT_ID, gguf.Keys.Tokenizer.EOM_ID)


def source_end_ids(model_dir: Path, hf: Any) -> dict[str, list[int]]:
    """Where the source model ends an answer: {"where it says so": [ids]}."""
    sources = {}
    if hf.eos_token_id is not None:
        sources["tokenizer_config.json eos_token"] = [hf.eos_token_id]
    path = model_dir / "generation_config.json"
    if path.is_file():
        value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
        if value is not None:
            sources["generation_config.json eos_token_id"] = value if isinstance(value, list) else [value]
    return sources


def thinking_markers(hf: Any) -> dict[str, int]:
    """The reasoning markers the source tokenizer has as tokens of their own: text -> id."""
    vocab = hf.get_vocab()
    return {marker: vocab[marker] for marker in THINKING_MARKERS if marker in vocab}


def control_tokens_gate(gguf_path: Path, model_dir: Path) -> GateResult:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(model_dir)
    llm = open_llama(gguf_path, vocab_only=True)

    def name(ids: list[int]) -> str:
        return ", ".join(f"{i} {hf.convert_ids_to_tokens(i)!r}" for i in ids) or "none"

    sources = source_end_ids(model_dir, hf)
    expected = sorted({i for ids in sources.values() for i in ids})
    said = "; ".join(f"{where} says {name(ids)}" for where, ids in sources.items()) or "the source names none"
    declared = {key: int(llm.metadata[key]) for key in DECLARED_KEYS if key in llm.metadata}
    eog = [i for i in range(llm.n_vocab()) if is_end_of_generation(llm, i)]
    problems = [f"{gguf_path.name}: {key} is {name([i])}, but {said}"
                for key, i in declared.items() if i not in expected]
    missing = [i for i in expected if i not in eog]
    if missing:
        problems.append(f"{gguf_path.name}: llama.cpp does not end generation at {name(missing)} ({said}); "
                        f"its end-of-generation ids are {name(eog)}")
    if not expected:
        problems.append(f"{model_dir}: neither tokenizer_config.json eos_token nor generation_config.json "
                        "eos_token_id names an end-of-generation token")
    markers = thinking_markers(hf)
    for marker, token_id in markers.items():
        found = llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
        if found != [token_id]:
            problems.append(f"{gguf_path.name}: thinking marker {marker!r} is token {token_id} in the tokenizer, "
                            f"but llama.cpp tokenizes it as {found}")
    metrics = {"source_end_ids": sources, "gguf_declared": declared, "gguf_end_of_generation": eog,
               "added_by_llama_cpp": sorted(set(eog) - set(expected)), "thinking_markers": markers}
    return GateResult("control_tokens", not problems, metrics,
                      {"source_end_ids": "all in llama.cpp's end-of-generation set",
                       "gguf_declared": "each one the source ends at", "thinking_markers": "same single ids"},
                      problems)
