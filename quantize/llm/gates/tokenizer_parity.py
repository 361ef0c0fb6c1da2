"""Gate 2: llama.cpp tokenizes exactly like the HF tokenizer, and renders the chat template identically.

Silent tokenizer mismatch is users' most painful GGUF bug; it does not crash, it just makes every answer
a little worse. So the ids must be *equal* on a fixed corpus (Chinese medical text, English, numbers,
whitespace runs, special tokens), and the chat prompt must yield the same ids with at most one BOS.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import gguf

from quantize.llm.gates.result import GateResult
from quantize.llm.gates.runtime import open_llama

PARITY_CORPUS = [
    "患者男性，64岁，腹腔镜胆囊切除术后第一天，体温37.8摄氏度。",
    "术中出血约30毫升，血压132/84毫米汞柱，心率72次/分。",
    "急性阑尾炎：转移性右下腹痛，白细胞14.2×10^9/L。",
    "The patient is a 64-year-old male after laparoscopic cholecystectomy.",
    "Give paracetamol 1 g every 6 hours; max 4 g/day. Don't exceed it!",
    "SpO2 98% on room air, BP 132/84 mmHg, HR 72 bpm, T 36.7 C.",
    "1234567890 3.14159 -42 1e-3 0.0001 2025-01-31 12:30:45",
    "a  b   c    d\t\te\n\nf\r\ng     ",
    "   leading spaces and trailing   ",
    "\n\n\nnew lines\n",
    "mixed 中文 and English 混合 text 123 测试",
    "emoji-free symbols: <>=+-*/%&|^~@#$ ()[]{} «» — …",
    "",
]
# Rendered here, and decoded greedily by generation parity and smoke: English, Chinese with a system message,
# and a short multi-turn conversation.
CHAT_CASES = [
    [{"role": "user", "content": "When should the urinary catheter be removed?"}],
    [{"role": "system", "content": "You are a careful surgical assistant."},
     {"role": "user", "content": "术后发热38.5摄氏度应如何处理？"}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "Dose of paracetamol?"},
     {"role": "assistant", "content": "1 g every 6 hours."},
     {"role": "user", "content": "Maximum per day?"}],
]


def _special_cases(hf: Any) -> list[str]:
    specials = sorted(set(hf.all_special_tokens) | {t.content for t in hf.added_tokens_decoder.values()})
    return [f"{token}text after{token} 中文{token}\n" for token in specials] + ["".join(specials)]


def render_native(template: str, messages: list[dict[str, str]]) -> str | None:
    """Render with llama.cpp's own chat-template engine; None when llama.cpp does not recognise it."""
    import llama_cpp

    chat = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for slot, message in zip(chat, messages, strict=True):
        role, content = message["role"].encode(), message["content"].encode()
        keep += [role, content]
        slot.role, slot.content = role, content
    size = 4096
    while True:
        buffer = ctypes.create_string_buffer(size)
        written = llama_cpp.llama_chat_apply_template(template.encode(), chat, len(messages), True, buffer, size)
        if written < 0:
            return None
        if written <= size:
            return buffer.raw[:written].decode("utf-8")
        size = written


def hf_chat_ids(hf: Any, messages: list[dict[str, str]]) -> list[int]:
    """The HF tokenizer's ids for a chat prompt (with the generation prompt), as a plain list."""
    ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def tokenizer_parity_gate(gguf_path: Path, model_dir: Path) -> GateResult:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(model_dir)
    llm = open_llama(gguf_path, vocab_only=True)
    problems: list[str] = []
    texts = PARITY_CORPUS + _special_cases(hf)
    mismatches = 0
    for text in texts:
        expected = hf(text, add_special_tokens=True)["input_ids"]
        found = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if found != expected:
            mismatches += 1
            problems.append(f"token ids differ for {text[:40]!r}: HF {expected[:12]}..., llama.cpp {found[:12]}...")

    template = llm.metadata.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE, "")
    bos_id, bos_text = hf.bos_token_id, hf.bos_token
    add_bos = llm.metadata.get(gguf.Keys.Tokenizer.ADD_BOS) == "true"
    chat_mismatches, max_bos = 0, 0
    for messages in CHAT_CASES:
        hf_text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        native = render_native(template, messages)
        # llama.cpp adds BOS as a token (add_bos), so its renderer leaves the BOS text out.
        expected_text = hf_text[len(bos_text):] if add_bos and bos_text and hf_text.startswith(bos_text) else hf_text
        if native is None:
            problems.append("llama.cpp does not recognise the chat template; the box could not render prompts")
            chat_mismatches += 1
            continue
        if native != expected_text:
            chat_mismatches += 1
            problems.append(f"chat rendering differs: HF {expected_text[:80]!r}, llama.cpp {native[:80]!r}")
            continue
        found = llm.tokenize(native.encode("utf-8"), add_bos=True, special=True)
        expected = hf_chat_ids(hf, messages)
        bos_count = found.count(bos_id) if bos_id is not None else 0
        max_bos = max(max_bos, bos_count)
        if found != expected:
            chat_mismatches += 1
            problems.append(f"chat prompt ids differ: HF {expected[:12]}..., llama.cpp {found[:12]}...")
        if bos_count > 1 or (bos_count == 1 and found[0] != bos_id):
            problems.append(f"chat prompt carries {bos_count} BOS tokens (positions must be [0] only)")
    metrics = {"texts": len(texts), "mismatched_texts": mismatches, "chat_cases": len(CHAT_CASES),
               "mismatched_chats": chat_mismatches, "max_bos_in_chat_prompt": max_bos,
               "pre_tokenizer": llm.metadata.get(gguf.Keys.Tokenizer.PRE),
               "tokenizer_model": llm.metadata.get(gguf.Keys.Tokenizer.MODEL)}
    thresholds = {"mismatched_texts": 0, "mismatched_chats": 0, "max_bos_in_chat_prompt": 1}
    return GateResult("tokenizer_parity", not problems, metrics, thresholds, problems)
