"""Our HF → GGUF converter (F32/F16/BF16), built on gguf-py's GGUFWriter and streamed tensor by tensor.

The writer is fed tensor *infos* first (shapes are known from the safetensors headers), then each tensor's
data is read, transformed and converted in blocks while the previous tensor is written. Peak memory is
two output tensors plus one block, independent of shard count or model size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from hw_profiles.gguf_types import FLOAT_TYPES, GGUF_TYPES
from quantize.llm.architecture import HParams, TensorPlan, llama3_rope_factors, read_hparams, tensor_plan, write_hparams
from quantize.llm.floats import STORAGE, convert_into
from quantize.llm.source import CheckpointError, TensorRef, load_config, read_into, read_raw, tensor_index
from quantize.llm.tokenizer import read_tokenizer, write_tokenizer

_BLOCK_ELEMENTS = 1 << 18  # 0.5-1 MB: measured fastest for the table look-up (numpy widens the indices per call)


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


class _Scratch:
    """Buffers reused from tensor to tensor: allocating each tensor afresh cost more in page faults (kernel
    time) than converting it."""

    def __init__(self) -> None:
        self._output = np.empty(0, np.uint8)
        self._blocks: dict[np.dtype, np.ndarray] = {}

    def output(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self._output.nbytes < nbytes:
            self._output = np.empty(nbytes, np.uint8)
        return self._output[:nbytes].view(dtype).reshape(shape)

    def block(self, dtype: np.dtype) -> np.ndarray:
        return self._blocks.setdefault(dtype, np.empty(_BLOCK_ELEMENTS, dtype))


def _load(entry: TensorPlan, ref: TensorRef | None, hp: HParams, out_dtype: np.dtype, scratch: _Scratch) -> np.ndarray:
    """Read, transform and convert one tensor; 1-D tensors stay float32 as llama.cpp expects.

    Matrices go into the reused output buffer, block by block (one pass per block that converts and
    checks for NaN/Inf); 1-D tensors are small and get their own array."""
    if ref is None:
        return llama3_rope_factors(hp)
    out = scratch.output(ref.shape, out_dtype) if entry.is_matrix else np.empty(ref.shape, np.float32)
    flat, start = out.reshape(-1), 0
    for raw in _raw_blocks(entry, ref, scratch):
        if not convert_into(raw, ref.dtype, flat[start:start + raw.size]):
            raise CheckpointError(f"{ref.shard}: tensor {ref.name!r} contains NaN or Inf values")
        start += raw.size
    return out


def _raw_blocks(entry: TensorPlan, ref: TensorRef, scratch: _Scratch) -> Iterator[np.ndarray]:
    """The tensor's raw storage in blocks of _BLOCK_ELEMENTS: streamed from the shard into one reused
    block, or, for the few that need a transform (Q/K permutation, on the raw bits) or are 1-D, read whole."""
    if entry.transform is not None or not entry.is_matrix:
        raw = read_raw(ref)
        raw = np.ascontiguousarray(entry.transform(raw) if entry.transform is not None else raw).reshape(-1)
        yield from (raw[i:i + _BLOCK_ELEMENTS] for i in range(0, raw.size, _BLOCK_ELEMENTS))
        return
    block, size = scratch.block(STORAGE[ref.dtype]), int(np.prod(ref.shape, dtype=np.int64))
    with open(ref.shard, "rb") as handle:
        handle.seek(ref.begin)
        for i in range(0, size, block.size):
            raw = block[:min(block.size, size - i)]
            read_into(handle, ref, raw)
            yield raw


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
    out_dtype = STORAGE[storage.tensor_type]
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

    bytes_read, scratches = 0, (_Scratch(), _Scratch())
    try:
        writer.write_header_to_file(out_path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        # Tensor i is converted into one buffer while tensor i-1 is written from the other: the write
        # releases the GIL, so the disk and the conversion overlap instead of taking turns.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf-write") as io:
            writing: Future[None] | None = None
            for i, entry in enumerate(plan):
                ref = index.get(entry.hf_name) if entry.hf_name else None
                tensor = _load(entry, ref, hp, out_dtype, scratches[i % 2])
                if writing is not None:
                    writing.result()
                writing = io.submit(writer.write_tensor_data, tensor)
                bytes_read += ref.nbytes if ref else 0
                if progress is not None:
                    progress(ref.nbytes if ref else 0)
            if writing is not None:
                writing.result()
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
