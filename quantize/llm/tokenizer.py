"""Tokenizer export: HF tokenizer files → GGUF `tokenizer.*` metadata.

Silent tokenizer mismatch is the most painful GGUF bug, so nothing here is guessed:
- BPE (tokenizer.json): `tokenizer.ggml.pre` is chosen from the *structure* of the pre-tokenizer (its split
  regex and byte-level flags), and an unknown pre-tokenizer is refused instead of falling back to a default.
- SentencePiece (tokenizer.model): pieces, scores and piece types come from the model proto itself.
Both export special-token ids, add_bos/add_eos and the chat template; the tokenizer-parity gate then
proves the result against the HF tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from quantize.llm.source import CheckpointError

TT = gguf.TokenType

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")  # Qwen splits every digit
# Pre-tokenizer structure → the llama.cpp pre-tokenizer implementing exactly that split.
KNOWN_PRE_TOKENIZERS: dict[tuple, str] = {
    (("split", LLAMA3_REGEX, "Isolated", False), ("byte_level", False, False)): "llama-bpe",
    (("split", QWEN2_REGEX, "Isolated", False), ("byte_level", False, False)): "qwen2",
    (("byte_level", False, True),): "gpt-2",
}


@dataclass
class TokenizerExport:
    model: str  # "gpt2" (BPE) or "llama" (SentencePiece)
    tokens: list[str]
    token_types: list[int]
    pre: str | None = None
    merges: list[str] = field(default_factory=list)
    scores: list[float] | None = None
    special_ids: dict[str, int] = field(default_factory=dict)  # bos/eos/unk/pad/eot → id
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool | None = None
    chat_template: str | None = None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _pre_structure(node: dict[str, Any] | None) -> tuple:
    """Reduce a tokenizers.json pre_tokenizer to the fields that change how text is split."""
    if node is None:
        return ()
    kind = node.get("type")
    if kind == "Sequence":
        return tuple(part for child in node.get("pretokenizers", []) for part in _pre_structure(child))
    if kind == "Split":
        pattern = node.get("pattern", {})
        return (("split", pattern.get("Regex", pattern.get("String")), node.get("behavior"), node.get("invert")),)
    if kind == "ByteLevel":
        return (("byte_level", bool(node.get("add_prefix_space")), bool(node.get("use_regex", True))),)
    return ((kind, json.dumps(node, sort_keys=True)),)


def pre_tokenizer_name(tokenizer_json: dict[str, Any], path: Path) -> str:
    structure = _pre_structure(tokenizer_json.get("pre_tokenizer"))
    name = KNOWN_PRE_TOKENIZERS.get(structure)
    if name is None:
        raise CheckpointError(
            f"{path}: pre_tokenizer {json.dumps(tokenizer_json.get('pre_tokenizer'))[:300]} is not one llama.cpp "
            f"implements exactly; known: {sorted(set(KNOWN_PRE_TOKENIZERS.values()))}. Refusing rather than "
            "letting tokenization (and answer quality) silently degrade."
        )
    return name


def _special_ids(config: dict[str, Any], lookup: dict[str, int], path: Path) -> dict[str, int]:
    ids = {}
    for role in ("bos", "eos", "unk", "pad"):
        text = _token_text(config.get(f"{role}_token"))
        if text is None:
            continue
        if text not in lookup:
            raise CheckpointError(f"{path}: {role}_token {text!r} is not in the vocabulary")
        ids[role] = lookup[text]
    return ids


def _post_processor_adds(tokenizer_json: dict[str, Any]) -> tuple[bool, bool]:
    """(add_bos, add_eos) as the fast tokenizer's TemplateProcessing does them for one sequence."""
    post = tokenizer_json.get("post_processor") or {}
    if post.get("type") == "Sequence":
        post = next((p for p in post.get("processors", []) if p.get("type") == "TemplateProcessing"), {})
    single = post.get("single") if post.get("type") == "TemplateProcessing" else None
    if not single:
        return False, False
    return "SpecialToken" in single[0], "SpecialToken" in single[-1]


def _chat_template(model_dir: Path, config: dict[str, Any]) -> str | None:
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: llama.cpp takes the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


def _pad(tokens: list[str], types: list[int], vocab_size: int, scores: list[float] | None, path: Path) -> None:
    if len(tokens) > vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {len(tokens)} tokens but config.json vocab_size is {vocab_size}"
        )
    for i in range(len(tokens), vocab_size):  # embedding rows past the tokenizer (padding)
        tokens.append(f"[PAD{i}]")
        types.append(TT.UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _read_bpe(model_dir: Path, config: dict[str, Any], vocab_size: int) -> TokenizerExport:
    path = model_dir / "tokenizer.json"
    data = _load_json(path)
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise CheckpointError(f"{path}: model.type {model.get('type')!r} is not supported; expected 'BPE'")
    pre = pre_tokenizer_name(data, path)
    lookup: dict[str, int] = dict(model["vocab"])
    kinds = {i: TT.NORMAL for i in lookup.values()}
    for added in data.get("added_tokens", []):
        lookup[added["content"]] = added["id"]
        kinds[added["id"]] = TT.CONTROL if added.get("special") else TT.USER_DEFINED
    by_id = {i: text for text, i in lookup.items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise CheckpointError(f"{path}: token ids are not contiguous from 0")
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [kinds[i] for i in range(len(by_id))]
    _pad(tokens, types, vocab_size, None, path)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    add_bos, add_eos = _post_processor_adds(data)
    return TokenizerExport(
        model="gpt2", tokens=tokens, token_types=types, pre=pre, merges=merges,
        special_ids=_special_ids(config, lookup, model_dir / "tokenizer_config.json"),
        add_bos=bool(config.get("add_bos_token", add_bos)), add_eos=bool(config.get("add_eos_token", add_eos)),
    )


def _read_sentencepiece(model_dir: Path, config: dict[str, Any], vocab_size: int) -> TokenizerExport:
    import sentencepiece

    path = model_dir / "tokenizer.model"
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(path.read_bytes())
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path}: not a SentencePiece model ({exc})") from exc
    tokens, scores, types = [], [], []
    for i in range(processor.vocab_size()):
        tokens.append(processor.id_to_piece(i))
        scores.append(processor.get_score(i))
        types.append(
            TT.UNKNOWN if processor.is_unknown(i) else TT.CONTROL if processor.is_control(i)
            else TT.UNUSED if processor.is_unused(i) else TT.BYTE if processor.is_byte(i) else TT.NORMAL
        )
    lookup = {text: i for i, text in enumerate(tokens)}
    for key, added in sorted((config.get("added_tokens_decoder") or {}).items(), key=lambda kv: int(kv[0])):
        token_id = int(key)
        if token_id < len(tokens):
            continue
        if token_id != len(tokens):
            raise CheckpointError(f"{model_dir / 'tokenizer_config.json'}: added token id {token_id} leaves a gap")
        tokens.append(added["content"])
        scores.append(0.0)
        types.append(TT.CONTROL if added.get("special") else TT.USER_DEFINED)
        lookup[added["content"]] = token_id
    _pad(tokens, types, vocab_size, scores, path)
    return TokenizerExport(
        model="llama", tokens=tokens, token_types=types, scores=scores,
        special_ids=_special_ids(config, lookup, model_dir / "tokenizer_config.json"),
        add_bos=bool(config.get("add_bos_token", True)), add_eos=bool(config.get("add_eos_token", False)),
        add_space_prefix=bool(config.get("add_prefix_space", True)),
    )


def read_tokenizer(model_dir: Path, vocab_size: int) -> TokenizerExport:
    """SentencePiece when tokenizer.model exists (its scores are authoritative), else BPE tokenizer.json."""
    config_path = model_dir / "tokenizer_config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: missing; it carries the special tokens and chat template")
    config = _load_json(config_path)
    if (model_dir / "tokenizer.model").is_file():
        export = _read_sentencepiece(model_dir, config, vocab_size)
    elif (model_dir / "tokenizer.json").is_file():
        export = _read_bpe(model_dir, config, vocab_size)
    else:
        raise CheckpointError(f"{model_dir}: no tokenizer.json or tokenizer.model")
    export.chat_template = _chat_template(model_dir, config)
    if not export.chat_template:
        raise CheckpointError(f"{config_path}: no chat_template (nor chat_template.jinja); the box needs one")
    return export


def write_tokenizer(writer: gguf.GGUFWriter, export: TokenizerExport) -> None:
    writer.add_tokenizer_model(export.model)
    if export.pre is not None:
        writer.add_tokenizer_pre(export.pre)
    writer.add_token_list(export.tokens)
    writer.add_token_types(export.token_types)
    if export.scores is not None:
        writer.add_token_scores(export.scores)
    if export.merges:
        writer.add_token_merges(export.merges)
    setters = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
               "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id}
    for role, token_id in sorted(export.special_ids.items()):
        setters[role](token_id)
    writer.add_add_bos_token(export.add_bos)
    writer.add_add_eos_token(export.add_eos)
    if export.add_space_prefix is not None:
        writer.add_add_space_prefix(export.add_space_prefix)
    writer.add_chat_template(export.chat_template)
