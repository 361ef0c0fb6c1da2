"""Our HF → GGUF converter (F32/F16/BF16), built on gguf-py's GGUFWriter and streamed tensor by tensor.

The writer is fed tensor *infos* first (shapes are known from the safetensors headers), then each tensor's
data is read, transformed, converted in row blocks and written before the next is read. Peak memory is
one output tensor plus one block, independent of shard count or model size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from hw_profiles.gguf_types import FLOAT_TYPES, GGUF_TYPES
from quantize.llm.architecture import HParams, TensorPlan, llama3_rope_factors, read_hparams, tensor_plan, write_hparams
from quantize.llm.source import CheckpointError, TensorRef, load_config, read_tensor, tensor_index
from quantize.llm.tokenizer import read_tokenizer, write_tokenizer

# How numpy holds each float tensor type while writing (bfloat16 as its raw 16 bits).
NUMPY_STORAGE = {"F32": np.dtype(np.float32), "F16": np.dtype(np.float16), "BF16": np.dtype(np.uint16)}
_BLOCK_BYTES = 16 << 20


class OutputError(Exception):
    """Writing an output file failed (disk full, file size limit, permissions)."""


@dataclass(frozen=True)
class ConversionResult:
    path: Path
    arch: str
    hparams: HParams
    tensor_names: list[str]
    bytes_read: int
    seconds: float


def _to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bits, round to nearest even (inputs are finite; checked before)."""
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _check_plan(plan: list[TensorPlan], index: dict[str, TensorRef], hp: HParams, model_dir: Path) -> None:
    for entry in plan:
        if entry.hf_name is None:
            continue
        ref = index.get(entry.hf_name)
        if ref is None:
            raise CheckpointError(
                f"{model_dir}: tensor {entry.hf_name!r} is missing from the safetensors files "
                f"(required by {hp.arch} with {hp.layers} layers)"
            )
        if ref.shape != entry.hf_shape:
            raise CheckpointError(
                f"{ref.shard}: tensor {entry.hf_name!r} has shape {list(ref.shape)}, but config.json "
                f"(hidden_size={hp.hidden}, intermediate_size={hp.intermediate}, heads={hp.heads}, "
                f"kv_heads={hp.kv_heads}, head_dim={hp.head_dim}, vocab_size={hp.vocab}) implies "
                f"{list(entry.hf_shape)}"
            )


def _load(entry: TensorPlan, ref: TensorRef | None, hp: HParams, out_dtype: np.dtype) -> np.ndarray:
    """Read, transform and convert one tensor; 1-D tensors stay float32 as llama.cpp expects."""
    if ref is None:
        return llama3_rope_factors(hp)
    if not entry.is_matrix or out_dtype == np.float32 or entry.transform is not None:
        values = read_tensor(ref)
        if entry.transform is not None:
            values = np.ascontiguousarray(entry.transform(values))
        _check_finite(values, ref)
        return values if not entry.is_matrix else _cast(values, out_dtype)
    out = np.empty(ref.shape, dtype=out_dtype)
    rows_per_block = max(1, _BLOCK_BYTES // max(1, ref.shape[1] * 4))
    for start in range(0, ref.shape[0], rows_per_block):
        block = read_tensor(ref, start, min(start + rows_per_block, ref.shape[0]))
        _check_finite(block, ref)
        out[start:start + len(block)] = _cast(block, out_dtype)
    return out


def _cast(values: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
    if out_dtype == np.uint16:
        return _to_bf16(np.ascontiguousarray(values, dtype=np.float32))
    return values.astype(out_dtype, copy=False)


def _check_finite(values: np.ndarray, ref: TensorRef) -> None:
    if not np.isfinite(values).all():
        raise CheckpointError(f"{ref.shard}: tensor {ref.name!r} contains NaN or Inf values")


def convert_checkpoint(
    model_dir: str | Path,
    out_path: str | Path,
    out_type: str = "f16",
    metadata: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionResult:
    """Convert a local HF checkpoint into one GGUF file. `metadata` adds custom string keys.

    `progress` is called with the number of source bytes consumed after each tensor.
    Raises CheckpointError for bad input and OutputError when the file cannot be written.
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    if out_type not in FLOAT_TYPES:
        raise CheckpointError(f"output type {out_type!r} is not a float type; expected one of {sorted(FLOAT_TYPES)}")
    storage = GGUF_TYPES[out_type]
    ggml_type = gguf.GGMLQuantizationType[storage.tensor_type]
    file_type = gguf.LlamaFileType[storage.file_type]
    out_dtype = NUMPY_STORAGE[storage.tensor_type]
    started = time.perf_counter()
    hp = read_hparams(load_config(model_dir))
    index = tensor_index(model_dir)
    tokenizer = read_tokenizer(model_dir, hp.vocab)
    plan = tensor_plan(hp, set(index))
    _check_plan(plan, index, hp, model_dir)

    writer = gguf.GGUFWriter(None, hp.spec.gguf_arch)
    write_hparams(writer, hp)
    write_tokenizer(writer, tokenizer)
    writer.add_file_type(int(file_type))
    for key, value in sorted((metadata or {}).items()):
        writer.add_string(key, value)
    for entry in plan:
        elements = int(np.prod(entry.hf_shape))
        dtype = out_dtype if entry.is_matrix else np.dtype(np.float32)
        raw = ggml_type if entry.is_matrix and out_type == "bf16" else None
        writer.add_tensor_info(entry.gguf_name, entry.hf_shape, dtype, elements * dtype.itemsize, raw_dtype=raw)

    bytes_read = 0
    try:
        writer.write_header_to_file(out_path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for entry in plan:
            ref = index.get(entry.hf_name) if entry.hf_name else None
            writer.write_tensor_data(_load(entry, ref, hp, out_dtype))
            bytes_read += ref.nbytes if ref else 0
            if progress is not None:
                progress(ref.nbytes if ref else 0)
        writer.close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            writer.close()
        out_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{out_path}: cannot write GGUF ({exc.strerror or exc}); is the disk full?") from exc
        raise
    return ConversionResult(out_path, hp.spec.gguf_arch, hp, [e.gguf_name for e in plan], bytes_read,
                            time.perf_counter() - started)


def checkpoint_bytes(model_dir: str | Path) -> int:
    """Total tensor bytes of a checkpoint (for progress bars and throughput)."""
    return sum(ref.nbytes for ref in tensor_index(Path(model_dir)).values())
