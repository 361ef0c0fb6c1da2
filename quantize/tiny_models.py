"""Tiny, locally built LLM checkpoints for tests, the demo and the appliance (no hub downloads ever).

Every builder is deterministic: fixed seeds, a bundled corpus, tokenizers trained here, and training
for a fixed number of steps on a fixed thread count. Dimensions are multiples of 256 so llama.cpp's
k-quant kernels really run (hidden 256, intermediate 512, head_dim 64).

    build_tiny_llm(out_dir, arch="qwen2", train_steps=0) -> Path   # a HF checkpoint directory

`arch` picks the HF class and the tokenizer family that real models of that family ship with:
llama → Llama-3 style byte-level BPE with llama3 rope scaling; qwen2/qwen3 → Qwen-style BPE with
ChatML; mistral → SentencePiece with a Mistral [INST] template.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantize.clinical_corpus import corpus_lines
from quantize.llm.tokenizer import LLAMA3_REGEX, QWEN2_REGEX

CHATML_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{{ '<|start_header_id|>' + message['role']"
    " + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
MISTRAL_TEMPLATE = (
    "{{- bos_token }}{%- if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{%- endif %}"
    "{%- set ns = namespace(open=false) %}{%- for message in messages %}"
    "{%- if not ns.open %}{{ '[INST] ' }}{%- set ns.open = true %}{%- endif %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' %}{{ message['content'] + '[/INST]' }}"
    "{%- else %}{{ ' ' + message['content'] | trim + eos_token }}{%- set ns.open = false %}{%- endif %}"
    "{%- endfor %}"
)


@dataclass(frozen=True)
class _Family:
    hf_class: str
    tokenizer: str  # "llama3" | "qwen2" | "spm"
    tied: bool
    extra: dict[str, Any]


FAMILIES: dict[str, _Family] = {
    "llama": _Family("LlamaForCausalLM", "llama3", tied=False, extra={
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    }),
    "mistral": _Family("MistralForCausalLM", "spm", tied=False, extra={"rope_theta": 1000000.0,
                                                                      "sliding_window": None}),
    "qwen2": _Family("Qwen2ForCausalLM", "qwen2", tied=True, extra={"rope_theta": 1000000.0}),
    "qwen3": _Family("Qwen3ForCausalLM", "qwen2", tied=True, extra={"rope_theta": 1000000.0, "head_dim": 64}),
}


# --------------------------------------------------------------------------- tokenizers


def _train_bpe(out_dir: Path, flavour: str, vocab_size: int, extra_tokens: tuple[str, ...] = ()) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if flavour == "llama3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        regex, roles, template = LLAMA3_REGEX, {"bos_token": specials[0], "eos_token": specials[4],
                                                 "pad_token": specials[1]}, LLAMA3_TEMPLATE
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        regex, roles, template = QWEN2_REGEX, {"eos_token": specials[2], "pad_token": specials[0]}, CHATML_TEMPLATE
    tokenizer = Tokenizer(models.BPE(ignore_merges=flavour == "llama3"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    tokenizer.add_special_tokens(specials)  # after the learned vocabulary, as in real models
    # Added but not special, as Qwen3 and the DeepSeek-R1 distills ship <think> and </think>.
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in extra_tokens])
    if flavour == "llama3":
        bos = tokenizer.token_to_id(specials[0])
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{specials[0]} $A", pair=f"{specials[0]} $A {specials[0]} $B", special_tokens=[(specials[0], bos)]
        )
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, chat_template=template, clean_up_tokenization_spaces=False,
                                 **roles)
    hf.save_pretrained(out_dir)
    return hf


def _train_sentencepiece(out_dir: Path, vocab_size: int) -> Any:
    import sentencepiece
    from transformers import LlamaTokenizer

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, num_threads=1, minloglevel=2,
    )
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    hf = LlamaTokenizer(vocab_file=str(out_dir / "tokenizer.model"), legacy=True, add_bos_token=True,
                        add_eos_token=False, chat_template=MISTRAL_TEMPLATE, clean_up_tokenization_spaces=False)
    hf.save_pretrained(out_dir)
    return hf


def build_tokenizer(out_dir: str | Path, flavour: str, vocab_size: int = 1024,
                    extra_tokens: tuple[str, ...] = ()) -> Any:
    """Train a tokenizer on the bundled corpus and save it (HF files) into out_dir; returns the HF tokenizer.

    `extra_tokens` are added as non-special tokens (BPE flavours only), e.g. reasoning markers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if flavour == "spm" and not extra_tokens:
        return _train_sentencepiece(out_dir, vocab_size)
    if flavour in ("llama3", "qwen2"):
        return _train_bpe(out_dir, flavour, vocab_size, extra_tokens)
    raise ValueError(f"tokenizer flavour {flavour!r}: expected 'llama3', 'qwen2' or 'spm' (extra tokens: BPE only)")


# --------------------------------------------------------------------------- models


def tiny_config(arch: str, vocab_size: int, layers: int = 2) -> dict[str, Any]:
    family = FAMILIES[arch]
    return {
        "architectures": [family.hf_class], "model_type": arch, "vocab_size": vocab_size, "hidden_size": 256,
        "intermediate_size": 512, "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "tie_word_embeddings": family.tied,
        "hidden_act": "silu", "initializer_range": 0.02, **family.extra,
    }


def qa_pairs() -> list[tuple[str, str]]:
    """The question/answer lines of the corpus ("Question: ... Answer: ..." and "问：...答：...")."""
    pairs = []
    for line in corpus_lines():
        for ask, answer in (("Question: ", " Answer: "), ("问：", "答：")):
            if line.startswith(ask) and answer in line:
                question, reply = line[len(ask):].split(answer, 1)
                pairs.append((question.strip(), reply.strip()))
    return pairs


LONG_ANSWER_TOPIC = "catheter"  # the gates' first prompt asks when the urinary catheter should be removed
LONG_ANSWER_LINES = 14  # narrative lines after the short answer: about 300 tokens, as a real instruct model writes
REASONING_LINES = 4  # narrative lines in each <think> block: 60-100 tokens, past the old 48-token smoke limit
THINK_MARKERS = ("<think>", "</think>")


def narrative_lines() -> list[str]:
    """The corpus lines that are not question/answer pairs: distinct sentences, so that a model seeing 64
    tokens at a time always knows which comes next and where an answer ends."""
    return [line for line in corpus_lines() if not line.startswith(("Question: ", "问："))]


def _short(index: int, question: str, answer: str) -> str:
    return answer


def _long(index: int, question: str, answer: str) -> str:
    """The catheter question is answered at length, through the narrative in corpus order; others stay short."""
    if LONG_ANSWER_TOPIC not in question:
        return answer
    return " ".join([answer, *narrative_lines()[:LONG_ANSWER_LINES]])


def _reasoning(index: int, question: str, answer: str) -> str:
    """A <think> block of its own narrative lines before each answer, as DeepSeek-R1 distills and Qwen3 write."""
    thoughts = narrative_lines()[index * REASONING_LINES:(index + 1) * REASONING_LINES]
    return f"{THINK_MARKERS[0]}\n{' '.join(thoughts)}\n{THINK_MARKERS[1]}\n\n{answer}"


# How the assistant answers in the chat training data: name -> (answer builder, extra tokens it needs).
ANSWER_STYLES: dict[str, tuple[Callable[[int, str, str], str], tuple[str, ...]]] = {
    "short": (_short, ()),
    "long": (_long, ()),
    "reasoning": (_reasoning, THINK_MARKERS),
}


def chat_transcripts(style: str = "short") -> list[list[dict[str, str]]]:
    """The corpus's Q/A pairs as user/assistant conversations (questions capitalised, as users type them),
    answered in `style`."""
    build = ANSWER_STYLES[style][0]
    return [[{"role": "user", "content": question[:1].upper() + question[1:]},
             {"role": "assistant", "content": build(i, question, answer)}]
            for i, (question, answer) in enumerate(qa_pairs())]


def training_ids(tokenizer: Any, style: str = "short") -> list[int]:
    """The Q/A pairs rendered with the chat template (so the model learns to end an answer with the template's
    end-of-turn token), repeated; for the short style also the corpus as plain text, so that the KLD gate's
    eval text is in distribution. The other styles train on their chats alone: memorising a few hundred
    tokens of answers takes a fraction of the steps."""
    chats: list[int] = []
    for messages in chat_transcripts(style):
        rendered = tokenizer.apply_chat_template(messages, tokenize=True)
        chats += list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
    if style != "short":
        return chats * 4
    ids = tokenizer("\n".join(corpus_lines()), add_special_tokens=False)["input_ids"]
    return ids * 2 + chats * 4


def _train(model: Any, token_ids: list[int], steps: int, seed: int, threads: int) -> list[float]:
    """Next-token training on the corpus for a fixed step count (deterministic on a fixed thread count)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    data = torch.tensor(token_ids, dtype=torch.long)
    seq, batch = 64, 8
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    losses = []
    model.train()
    try:
        for _ in range(steps):
            starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=generator)
            chunk = torch.stack([data[s:s + seq + 1] for s in starts.tolist()])
            loss = model(input_ids=chunk[:, :-1], labels=chunk[:, :-1].clone()).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(previous)
        model.eval()
    return losses


def build_tiny_llm(
    out_dir: str | Path,
    arch: str = "qwen2",
    *,
    train_steps: int = 0,
    seed: int = 0,
    layers: int = 2,
    vocab_size: int = 1024,
    dtype: str = "float32",
    max_shard_size: str | None = None,
    threads: int = 1,
    style: str = "short",
) -> Path:
    """Write a tiny HF checkpoint of the given family into out_dir and return the directory.

    train_steps=0 gives random weights (seconds); about 300 steps train on the bundled corpus in about 20 s of
    CPU, so that the model's predictions are peaked and a KLD gate means something. One torch thread by
    default: this tiny model gains nothing from more, and on a busy or oversubscribed machine (pytest -n 2)
    torch's spinning intra-op workers made two threads 15x slower than one.
    dtype "float32" | "float16" | "bfloat16"; max_shard_size (e.g. "300KB") writes a sharded checkpoint.
    style: how trained answers read (ANSWER_STYLES): "short", "long" (~300 tokens) or "reasoning"
    (a <think> block first; the tokenizer gets <think> and </think>).
    """
    import torch
    import transformers

    if arch not in FAMILIES:
        raise ValueError(f"arch {arch!r}: expected one of {sorted(FAMILIES)}")
    if style not in ANSWER_STYLES:
        raise ValueError(f"style {style!r}: expected one of {sorted(ANSWER_STYLES)}")
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(out_dir, FAMILIES[arch].tokenizer, vocab_size, ANSWER_STYLES[style][1])
    padded_vocab = -(-len(tokenizer) // 64) * 64  # real checkpoints pad the embedding past the tokenizer
    config_dict = tiny_config(arch, padded_vocab, layers)
    config_dict["bos_token_id"], config_dict["eos_token_id"] = tokenizer.bos_token_id, tokenizer.eos_token_id
    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(**config_dict)
    model = getattr(transformers, FAMILIES[arch].hf_class)(config)
    if train_steps:
        _train(model, training_ids(tokenizer, style), train_steps, seed, threads)
    model = model.to(getattr(torch, dtype))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, safe_serialization=True, **kwargs)
    _strip_volatile(out_dir, tokenizer)
    return out_dir


def _strip_volatile(out_dir: Path, tokenizer: Any) -> None:
    """Drop fields that record the library version, so the checkpoint depends only on our inputs; the
    generation config is rewritten with just the ids a real chat model's carries (where answers end)."""
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("transformers_version", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    (out_dir / "generation_config.json").write_text(
        json.dumps({key: value for key, value in ids.items() if value is not None}, indent=2, sort_keys=True) + "\n")
