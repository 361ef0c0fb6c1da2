"""`orbox quantize bench`: conversion throughput and peak RSS on a synthetic ~1 GB sharded checkpoint.

The conversion runs in a fresh child process so its peak RSS (VmHWM) is the converter's alone. Baselines
printed beside the numbers: the memory budget (largest shard + 20 %) and a plain read+write copy of the
same bytes (the disk's ceiling for any converter), measured alternately with the conversion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quantize.tiny_models import build_tokenizer

_WORKER = """
import json, sys, time
from quantize.llm.export import convert_checkpoint
start = time.perf_counter()
result = convert_checkpoint(sys.argv[1], sys.argv[2], sys.argv[3])
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"bytes": result.bytes_read, "seconds": seconds, "peak_rss_kb": hwm}))
"""


class BenchError(Exception):
    """The conversion worker failed."""


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """Minimal safetensors writer (header + raw data) so the synthetic checkpoint needs no torch."""
    codes = {"float16": ("F16", np.float16), "float32": ("F32", np.float32), "bfloat16": ("BF16", np.float32)}
    code, np_dtype = codes[dtype]
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = array.astype(np_dtype)
        raw = (data.view(np.uint32) >> 16).astype(np.uint16).tobytes() if dtype == "bfloat16" else data.tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as handle:
        handle.write(len(head).to_bytes(8, "little") + head)
        for blob in blobs:
            handle.write(blob)


def synthetic_checkpoint(out_dir: Path, size_mb: int, shards: int, dtype: str) -> Path:
    """A Llama-shaped checkpoint of about size_mb (random weights, real tokenizer), written shard by shard."""
    hidden, intermediate, heads, kv_heads = 2048, 5632, 16, 4
    tokenizer = build_tokenizer(out_dir, "llama3")
    vocab = -(-len(tokenizer) // 64) * 64
    bytes_per = 4 if dtype == "float32" else 2
    per_layer = (2 * hidden * hidden + 2 * hidden * hidden // (heads // kv_heads) + 3 * hidden * intermediate)
    layers = max(shards, round(size_mb * 1e6 / bytes_per / per_layer))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": False,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(0)
    kv_rows = hidden // (heads // kv_heads)
    weight_map = {}
    for shard in range(shards):
        name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        tensors: dict[str, np.ndarray] = {}
        if shard == 0:
            tensors["model.embed_tokens.weight"] = rng.standard_normal((vocab, hidden), np.float32) * 0.02
        for i in range(shard * layers // shards, (shard + 1) * layers // shards):
            p = f"model.layers.{i}."
            shapes = {"self_attn.q_proj.weight": (hidden, hidden), "self_attn.k_proj.weight": (kv_rows, hidden),
                      "self_attn.v_proj.weight": (kv_rows, hidden), "self_attn.o_proj.weight": (hidden, hidden),
                      "mlp.gate_proj.weight": (intermediate, hidden), "mlp.up_proj.weight": (intermediate, hidden),
                      "mlp.down_proj.weight": (hidden, intermediate), "input_layernorm.weight": (hidden,),
                      "post_attention_layernorm.weight": (hidden,)}
            for suffix, shape in shapes.items():
                tensors[p + suffix] = rng.standard_normal(shape, np.float32) * 0.02
        if shard == shards - 1:
            tensors["model.norm.weight"] = np.ones(hidden, np.float32)
            tensors["lm_head.weight"] = rng.standard_normal((vocab, hidden), np.float32) * 0.02
        _write_safetensors(out_dir / name, tensors, dtype)
        weight_map.update({key: name for key in tensors})
        del tensors
    (out_dir / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return out_dir


def _copy_throughput(model_dir: Path, target: Path) -> float:
    start, total = time.perf_counter(), 0
    with open(target, "wb") as out:
        for shard in sorted(model_dir.glob("*.safetensors")):
            with open(shard, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
            total += shard.stat().st_size
        out.flush()
    return total / 1e6 / (time.perf_counter() - start)


def _convert_in_child(model_dir: Path, out_path: Path, out_type: str) -> dict[str, float]:
    child = subprocess.run([sys.executable, "-c", _WORKER, str(model_dir), str(out_path), out_type],
                           capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise BenchError(f"conversion worker failed: {child.stderr[-2000:]}")
    out_path.unlink()
    return json.loads(child.stdout.strip().splitlines()[-1])


def run_bench(size_mb: int, shards: int, dtype: str, out_type: str, workdir: Path | None,
              repeats: int = 3) -> list[str]:
    """Copy and conversion alternate `repeats` times; the best of each is reported, so that another
    user's load on a shared machine shifts both the same way rather than only one."""
    root = Path(tempfile.mkdtemp(prefix="orbox-llm-bench-", dir=workdir))
    try:
        (root / "model").mkdir()
        model_dir = synthetic_checkpoint(root / "model", size_mb, shards, dtype)
        shard_sizes = [p.stat().st_size for p in model_dir.glob("*.safetensors")]
        largest = max(shard_sizes)
        copies, runs = [], []
        for _ in range(repeats):
            # Each timed run starts with no dirty pages pending: otherwise the writeback of the checkpoint or
            # of the previous run's output lands in whichever run comes next and decides the ratio.
            os.sync()
            copies.append(_copy_throughput(model_dir, root / "copy.bin"))
            (root / "copy.bin").unlink()
            os.sync()
            runs.append(_convert_in_child(model_dir, root / "out.gguf", out_type))
        copy_mb_s = max(copies)
        stats = max(runs, key=lambda run: run["bytes"] / run["seconds"])
        rate = stats["bytes"] / 1e6 / stats["seconds"]
        peak = max(run["peak_rss_kb"] for run in runs) * 1024
        budget = largest * 1.2
        return [
            f"synthetic checkpoint: {sum(shard_sizes) / 1e6:.0f} MB {dtype} in {len(shard_sizes)} shards "
            f"(largest {largest / 1e6:.0f} MB) -> {out_type} GGUF",
            f"conversion throughput: {rate:.1f} MB/s (baseline: plain copy of the same bytes {copy_mb_s:.1f} MB/s; "
            f"{rate / copy_mb_s:.0%} of it; best of {repeats} each)",
            f"peak RSS during conversion: {peak / 1e6:.0f} MB "
            f"(budget: largest shard + 20% = {budget / 1e6:.0f} MB; {'within' if peak <= budget else 'OVER'} budget)",
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)

