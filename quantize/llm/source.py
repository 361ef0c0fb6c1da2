"""Reading a local Hugging Face checkpoint: config, file inventory and safetensors, one tensor at a time.

We parse safetensors ourselves (an 8-byte header length, a JSON header, raw little-endian data) so that
conversion holds only one tensor in memory, reads no file twice, and can name the exact shard and tensor
when a file is truncated or corrupt. Tensors are read in their storage dtype, straight into the caller's buffer.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hw_profiles.planner import ModelConfigError, load_model_config
from quantize.llm.floats import STORAGE

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "generation_config.json")
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(Exception):
    """The checkpoint directory is incomplete, corrupt or disagrees with its config."""


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: shard file, dtype, shape and byte range inside the shard."""

    name: str
    shard: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def load_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; expected a Hugging Face checkpoint directory")
    try:
        return load_model_config(path)
    except ModelConfigError as exc:
        raise CheckpointError(str(exc)) from exc


def shard_paths(model_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint, in index order (single file or sharded with an index)."""
    index_path = model_dir / INDEX_FILE
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index_path}: expected JSON with a 'weight_map' object ({exc})") from exc
        names = sorted(set(weight_map.values()))
        missing = [name for name in names if not (model_dir / name).is_file()]
        if missing:
            raise CheckpointError(f"{index_path}: lists shard(s) {missing} that do not exist in {model_dir}")
        return [model_dir / name for name in names]
    single = model_dir / SINGLE_FILE
    if single.is_file():
        return [single]
    raise CheckpointError(
        f"{model_dir}: no {SINGLE_FILE} or {INDEX_FILE}; only safetensors checkpoints are supported"
    )


def input_files(model_dir: Path) -> list[Path]:
    """Every file that determines the conversion output (hashed into the build record)."""
    files = [model_dir / "config.json", *shard_paths(model_dir)]
    if (model_dir / INDEX_FILE).is_file():
        files.append(model_dir / INDEX_FILE)
    files += [model_dir / name for name in TOKENIZER_FILES if (model_dir / name).is_file()]
    return sorted(files)


def read_header(shard: Path) -> list[TensorRef]:
    """Parse one safetensors header and check that every byte range lies inside the file."""
    size = shard.stat().st_size
    with open(shard, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{shard}: truncated ({size} bytes); not a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(_MAX_HEADER, size - 8):
            raise CheckpointError(f"{shard}: header length {header_len} exceeds the file size {size}; corrupt")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{shard}: header is not valid JSON ({exc}); corrupt safetensors") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{shard}: header must be a JSON object; corrupt safetensors")
    data_start = 8 + header_len
    refs = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{shard}: tensor {name!r} has a malformed header entry ({info!r})") from exc
        if dtype not in STORAGE:
            raise CheckpointError(
                f"{shard}: tensor {name!r} has dtype {dtype}; expected one of {sorted(STORAGE)}"
            )
        expected = int(np.prod(shape, dtype=np.int64)) * STORAGE[dtype].itemsize
        if end - begin != expected or begin < 0:
            raise CheckpointError(
                f"{shard}: tensor {name!r} spans {end - begin} bytes, shape {list(shape)} {dtype} needs {expected}"
            )
        if data_start + end > size:
            raise CheckpointError(
                f"{shard}: tensor {name!r} ends at byte {data_start + end} but the file has {size}; truncated"
            )
        refs.append(TensorRef(name, shard, dtype, shape, data_start + begin, data_start + end))
    return refs


def tensor_index(model_dir: Path) -> dict[str, TensorRef]:
    """All tensors of the checkpoint by HF name, from the headers only (no data read)."""
    index: dict[str, TensorRef] = {}
    for shard in shard_paths(model_dir):
        for ref in read_header(shard):
            if ref.name in index:
                raise CheckpointError(f"{shard}: tensor {ref.name!r} also appears in {index[ref.name].shard}")
            index[ref.name] = ref
    return index


def read_into(handle: BinaryIO, ref: TensorRef, into: np.ndarray) -> None:
    """Fill `into` (contiguous, the tensor's storage dtype) with the next bytes of `ref` from its open shard."""
    if handle.readinto(memoryview(into).cast("B")) != into.nbytes:
        raise CheckpointError(f"{ref.shard}: tensor {ref.name!r} is truncated; the file changed while reading")


def read_raw(ref: TensorRef) -> np.ndarray:
    """The whole tensor in its storage dtype (BF16 as raw 16 bits; quantize.llm.floats converts it)."""
    values = np.empty(ref.shape, dtype=STORAGE[ref.dtype])
    with open(ref.shard, "rb") as handle:
        handle.seek(ref.begin)
        read_into(handle, ref, values)
    return values
