"""What an input encoder checkpoint is: its family, task, tokenizer and sentence-transformers settings.

Everything here is read from the local model directory and checked before any export starts,
so that a wrong directory fails in a second with a message naming the file and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primitives.artifacts import file_digest

ENCODER_MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
TASKS = ("embedding", "reranker")
SUPPORTED_ST_MODULES = {
    "sentence_transformers.models.Transformer": "transformer",
    "sentence_transformers.models.Pooling": "pooling",
    "sentence_transformers.models.Normalize": "normalize",
}
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens", "lasttoken")
_IGNORED_INPUT_DIRS = {".git", "onnx", "openvino", ".cache"}


class EncoderInputError(ValueError):
    """The model directory, profile or calibration data cannot be used; the message says why."""


@dataclass(frozen=True)
class EncoderSource:
    """A validated local encoder checkpoint."""

    path: Path
    model_id: str
    task: str
    model_type: str
    config: dict[str, Any]
    pooling: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    max_seq_length: int = 512
    do_lower_case: bool = False

    def input_files(self) -> dict[str, dict[str, Any]]:
        """sha256 and size of every file of the checkpoint, for the manifest's provenance record."""
        return {
            file.relative_to(self.path).as_posix(): file_digest(file).as_dict()
            for file in sorted(self.path.rglob("*"))
            if file.is_file() and not _IGNORED_INPUT_DIRS & set(file.relative_to(self.path).parts)
        }


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise EncoderInputError(f"{path}: missing; expected {what}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderInputError(f"{path}: not valid JSON ({exc}); expected {what}") from exc


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    document = read_json(path, what)
    if not isinstance(document, dict):
        raise EncoderInputError(f"{path}: expected {what} (a JSON object), found {type(document).__name__}")
    return document


def inspect_encoder(model_dir: str | Path, task: str | None = None, model_id: str | None = None) -> EncoderSource:
    """Check that `model_dir` holds a supported encoder with a tokenizer, and read its embedding settings."""
    root = Path(model_dir)
    if not root.is_dir():
        raise EncoderInputError(f"{root}: not a directory; expected a local Hugging Face model directory")
    config = read_json_object(root / "config.json", "a Hugging Face config.json")
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(arch, str) for arch in architectures):
        raise EncoderInputError(
            f"{root / 'config.json'}: field 'architectures' must be a list of class names, found {architectures!r}"
        )
    if model_type not in ENCODER_MODEL_TYPES or config.get("is_decoder") or any(
        "CausalLM" in arch or "LMHead" in arch for arch in architectures
    ):
        raise EncoderInputError(
            f"{root / 'config.json'}: model_type {model_type!r} (architectures {architectures}) is not a supported "
            f"encoder; expected model_type one of {', '.join(ENCODER_MODEL_TYPES)} without a decoder/LM head"
        )
    is_classifier = any(arch.endswith("ForSequenceClassification") for arch in architectures)
    task = task or ("reranker" if is_classifier else "embedding")
    if task not in TASKS:
        raise EncoderInputError(f"--task must be one of {', '.join(TASKS)}, found {task!r}")
    if task == "reranker" and not is_classifier:
        raise EncoderInputError(
            f"{root / 'config.json'}: --task reranker needs a *ForSequenceClassification checkpoint, "
            f"found architectures {architectures}"
        )
    _require_tokenizer(root)
    settings = _embedding_settings(root, config) if task == "embedding" else {}
    return EncoderSource(
        path=root,
        model_id=model_id or root.resolve().name,
        task=task,
        model_type=model_type,
        config=config,
        max_seq_length=settings.get("max_seq_length") or _default_max_length(root, config),
        pooling=settings.get("pooling", {}),
        normalize=settings.get("normalize", False),
        do_lower_case=settings.get("do_lower_case", False),
    )


def _require_tokenizer(root: Path) -> None:
    """The box tokenizes with the `tokenizers` package, so a fast tokenizer (tokenizer.json) must be derivable."""
    candidates = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "vocab.json")
    if not any((root / name).is_file() for name in candidates):
        raise EncoderInputError(
            f"{root}: missing tokenizer; expected tokenizer.json (or vocab.txt / sentencepiece.bpe.model / "
            "vocab.json+merges.txt to build one from), found none"
        )


def _default_max_length(root: Path, config: dict[str, Any]) -> int:
    """sentence-transformers' rule: min(max_position_embeddings, tokenizer model_max_length), XLM-R offset aside."""
    positions = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") in ("roberta", "xlm-roberta"):
        positions -= int(config.get("pad_token_id", 1)) + 1
    tokenizer_config_path = root / "tokenizer_config.json"
    tokenizer_max = positions
    if tokenizer_config_path.is_file():
        tokenizer_max = read_json_object(tokenizer_config_path, "a tokenizer config").get("model_max_length",
                                                                                          positions)
    return int(min(positions, tokenizer_max if isinstance(tokenizer_max, int | float) else positions))


def _embedding_settings(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Pooling, normalisation and max length as sentence-transformers would apply them."""
    hidden = int(config.get("hidden_size", 0))
    modules_path = root / "modules.json"
    if not modules_path.is_file():
        # sentence-transformers wraps a plain HF model as Transformer + mean Pooling, no Normalize.
        return {"pooling": {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}, "normalize": False}
    modules = read_json(modules_path, "sentence-transformers modules.json (a list of modules)")
    if not isinstance(modules, list):
        raise EncoderInputError(f"{modules_path}: expected a list of modules, found {type(modules).__name__}")
    kinds = []
    pooling: dict[str, Any] = {}
    for index, module in enumerate(modules):
        kind = SUPPORTED_ST_MODULES.get(module.get("type") if isinstance(module, dict) else None)
        if kind is None:
            raise EncoderInputError(
                f"{modules_path}: module {index} has type "
                f"{module.get('type') if isinstance(module, dict) else module!r}; "
                f"the box runtime supports only {', '.join(SUPPORTED_ST_MODULES)}"
            )
        kinds.append(kind)
        if kind == "pooling":
            pooling = read_json_object(root / str(module.get("path", "")) / "config.json",
                                       "a sentence-transformers Pooling config")
    if kinds[:2] != ["transformer", "pooling"] or kinds[2:] not in ([], ["normalize"]):
        raise EncoderInputError(f"{modules_path}: expected Transformer, Pooling[, Normalize], found {kinds}")
    modes = [mode for mode in POOLING_MODES if pooling.get(f"pooling_mode_{mode}")]
    unsupported = [key for key, value in pooling.items() if key.startswith("pooling_mode_") and value
                   and key.removeprefix("pooling_mode_") not in POOLING_MODES]
    if not modes or unsupported:
        raise EncoderInputError(
            f"{modules_path}: Pooling config enables {unsupported or 'no mode'}; "
            f"supported modes: {', '.join(POOLING_MODES)}"
        )
    st_config_path = root / "sentence_bert_config.json"
    st_config = read_json_object(st_config_path, "sentence_bert_config.json") if st_config_path.is_file() else {}
    max_seq_length = st_config.get("max_seq_length")
    if max_seq_length is not None and (isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int)
                                       or max_seq_length < 1):
        raise EncoderInputError(f"{st_config_path}: field 'max_seq_length' must be a positive integer, "
                                f"found {max_seq_length!r}")
    do_lower_case = st_config.get("do_lower_case", False)
    if not isinstance(do_lower_case, bool):
        raise EncoderInputError(f"{st_config_path}: field 'do_lower_case' must be true or false, "
                                f"found {do_lower_case!r}")
    return {
        "pooling": pooling,
        "normalize": kinds[-1] == "normalize",
        "max_seq_length": max_seq_length,
        "do_lower_case": do_lower_case,
    }
