"""Where an encoder graph spends its time: onnxruntime's own profiler, summed per op type.

Answers "what limits the INT8 speedup" with numbers: the INT8 GEMMs, the FP32 outlier MatMuls (and the
Mul / Gather / Add that split them off), attention, layer norms, the embedding Gather.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def op_type_ms(model_path: Path, feeds: list[dict[str, np.ndarray]], threads: int,
               repeats: int = 3) -> dict[str, float]:
    """Kernel time per op type in ms per pass over `feeds` (the mean of `repeats` passes), most expensive
    first, with the session options the box uses."""
    import onnxruntime as ort

    from inference.encoder import ORT_DISABLED_OPTIMIZERS

    with tempfile.TemporaryDirectory(prefix="orbox-op-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=ORT_DISABLED_OPTIMIZERS)
        names = {i.name for i in session.get_inputs()}
        for _ in range(repeats):
            for feed in feeds:
                session.run(None, {k: v for k, v in feed.items() if k in names})
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    return {op: us / 1000 / repeats for op, us in totals.most_common()}


def format_op_profile(name: str, times: dict[str, float], top: int = 8) -> str:
    total = sum(times.values()) or 1.0
    parts = [f"{op} {ms:.1f} ms ({ms / total:.0%})" for op, ms in list(times.items())[:top]]
    return f"{name}: {total:.1f} ms in kernels; " + ", ".join(parts)
