"""FP32 export of an encoder: optimum-onnx ONNX, onnxruntime fusion, and the files the box runtime reads.

The box never sees transformers, so everything it needs to embed exactly like
sentence-transformers is written here next to the model: tokenizer.json (the fast tokenizer's
own serialisation), sentence_bert_config.json, modules.json, 1_Pooling/config.json and encoder.json.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inference.encoder import ENCODER_FORMAT
from primitives.atomic import atomic_write_text
from primitives.signing import canonical_json
from quantize.encoder.source import EncoderInputError, EncoderSource

OUTPUT_NAMES = {"embedding": "last_hidden_state", "reranker": "logits"}
OPTIMUM_TASKS = {"embedding": "feature-extraction", "reranker": "text-classification"}
ST_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
]
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def _write_json(path: Path, document: Any) -> None:
    atomic_write_text(path, canonical_json(document).decode("utf-8"))


def load_hf_tokenizer(source: EncoderSource) -> Any:
    """The fast (Rust) tokenizer, whose tokenizer.json the box loads with the `tokenizers` package."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.path), use_fast=True, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise EncoderInputError(f"{source.path}: missing or unreadable tokenizer ({exc})") from exc
    if not tokenizer.is_fast:
        raise EncoderInputError(f"{source.path}: tokenizer has no fast (tokenizers) form; the box cannot run it")
    if tokenizer.pad_token is None:
        raise EncoderInputError(f"{source.path}: tokenizer defines no pad_token; batching on the box needs one")
    return tokenizer


def write_runtime_files(source: EncoderSource, role_dir: Path, tokenizer: Any, openvino: bool) -> None:
    """Everything except the weights: tokenizer and settings, in the layout inference.encoder reads."""
    role_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(role_dir / "tokenizer.json", tokenizer.backend_tokenizer.to_str(pretty=True))
    _write_json(role_dir / "sentence_bert_config.json",
                {"max_seq_length": source.max_seq_length, "do_lower_case": source.do_lower_case})
    dim = 1
    if source.task == "embedding":
        _write_json(role_dir / "modules.json", ST_MODULES + ([NORMALIZE] if source.normalize else []))
        _write_json(role_dir / "1_Pooling" / "config.json", source.pooling)
        enabled = sum(1 for key, value in source.pooling.items() if key.startswith("pooling_mode_") and value)
        dim = int(source.config["hidden_size"]) * enabled
    elif int(source.config.get("num_labels", len(source.config.get("id2label", {})) or 1)) != 1:
        raise EncoderInputError(
            f"{source.path / 'config.json'}: a reranker must have exactly one output label (num_labels 1), "
            f"found {source.config.get('id2label')}"
        )
    _write_json(role_dir / "encoder.json", {
        "format": ENCODER_FORMAT,
        "task": source.task,
        "model_id": source.model_id,
        "dim": dim,
        "output": OUTPUT_NAMES[source.task],
        "onnx": "model.onnx",
        "openvino": "openvino/model.xml" if openvino else None,
        "pad_id": int(tokenizer.pad_token_id),
        "pad_token": tokenizer.pad_token,
    })


def export_onnx(source: EncoderSource, work_dir: Path) -> Path:
    """optimum-onnx export of the plain FP32 graph (no pooling inside: the runtime pools as ST does)."""
    from optimum.exporters.onnx import main_export

    out_dir = work_dir / "export"
    with quiet():
        main_export(str(source.path), output=str(out_dir), task=OPTIMUM_TASKS[source.task],
                    library_name="transformers", do_validation=False, device="cpu")
    path = out_dir / "model.onnx"
    if not path.is_file():
        raise EncoderInputError(f"{source.path}: optimum-onnx export produced no model.onnx")
    return path


def fuse_onnx(export_path: Path, out_path: Path, source: EncoderSource) -> Path:
    """onnxruntime's transformer fusions: the fast FP32 baseline, and the graph the INT8 recipes quantize.

    Measured here (onnxruntime 1.31, one thread): MultiHeadAttention fusion keeps Q/K/V as plain
    MatMuls (so they quantize to DynamicQuantizeMatMul) and drops the reshape/transpose chatter;
    SkipLayerNormalization is left out because its CPU kernel ran 7x slower than Add+LayerNormalization.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_multi_head_attention = True
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_embed_layer_norm = False
    with quiet():
        model = optimize_model(
            str(export_path), model_type="bert", optimization_options=options,
            num_heads=int(source.config["num_attention_heads"]), hidden_size=int(source.config["hidden_size"]),
            opt_level=1, use_gpu=False, only_onnxruntime=False,
        )
        model.save_model_to_file(str(out_path))
    return out_path


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters print warnings and progress of their own; keep the CLI's output to our progress bar."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
