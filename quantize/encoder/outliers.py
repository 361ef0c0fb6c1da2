"""Keep outlier activation channels in FP32 (LLM.int8()-style decomposition) so that INT8 keeps its accuracy.

Measured on MiniLM-L6: dynamic INT8 loses most of its accuracy in a handful of input channels
(e.g. channel 99 of every FFN input reaches ~30 while the median channel peaks at ~1.6), because
one per-tensor activation scale must cover them. SmoothQuant-style rescaling made it worse (the
per-channel weight scales absorb the outlier instead) and centring cannot help an asymmetric
quantizer. Splitting those channels off does work: for a MatMul  Y = X W,

    Y = (X * mask) W_q  +  X[..., idx] W[idx, :]

where `mask` zeroes the few outlier channels `idx` so the INT8 path sees a small range, and the
outlier channels go through a tiny FP32 MatMul. The graph stays FP32-exact before quantization.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

OUTLIER_SUFFIX = "/orbox_outlier_fp32"
MAX_CHANNELS = 8


def weight_consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """input tensor -> MatMul nodes that multiply it by a 2-D constant weight (the quantizable ones)."""
    initializers = {init.name: init for init in graph.initializer}
    groups: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in initializers and len(initializers[node.input[1]].dims) == 2:
            groups[node.input[0]].append(node)
    return dict(groups)


def channel_absmax(model_path: Path, tensors: list[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-channel max |x| of each tensor over the calibration feeds."""
    import onnx
    import onnxruntime as ort

    probe = onnx.load(str(model_path))
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    absmax: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(tensors, session.run(tensors, feed), strict=True):
            peak = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            absmax[name] = np.maximum(absmax[name], peak) if name in absmax else peak
    return absmax


def outlier_channels(absmax: np.ndarray, ratio: float) -> np.ndarray:
    """Channels whose peak exceeds `ratio` x the median channel peak (at most MAX_CHANNELS, sorted)."""
    candidates = np.argsort(-absmax, kind="stable")[:MAX_CHANNELS]
    return np.sort(candidates[absmax[candidates] > ratio * np.median(absmax)])


def split_outliers(fp32_path: Path, out_path: Path, feeds: list[dict[str, np.ndarray]], ratio: float) -> tuple[
        list[str], int]:
    """Write the decomposed FP32 graph; return (names of the FP32 outlier MatMuls, number of channels split)."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(fp32_path))
    graph = model.graph
    groups = weight_consumers(graph)
    absmax = channel_absmax(fp32_path, list(groups), feeds)
    initializers = {init.name: init for init in graph.initializer}
    fp32_nodes: list[str] = []
    channels = 0
    for tensor, consumers in groups.items():
        idx = outlier_channels(absmax[tensor], ratio)
        if idx.size == 0:
            continue
        channels += int(idx.size)
        mask = np.ones(absmax[tensor].shape, np.float32)
        mask[idx] = 0.0
        stem = f"{tensor}{OUTLIER_SUFFIX}"
        graph.initializer.extend([numpy_helper.from_array(mask, f"{stem}/mask"),
                                  numpy_helper.from_array(idx.astype(np.int64), f"{stem}/idx")])
        graph.node.extend([
            helper.make_node("Mul", [tensor, f"{stem}/mask"], [f"{stem}/inliers"], name=f"{stem}/mask_mul"),
            helper.make_node("Gather", [tensor, f"{stem}/idx"], [f"{stem}/outliers"], name=f"{stem}/gather", axis=-1),
        ])
        for node in consumers:
            weight = numpy_helper.to_array(initializers[node.input[1]])
            outlier_weight = numpy_helper.from_array(weight[idx].astype(np.float32), f"{node.name}{OUTLIER_SUFFIX}/w")
            graph.initializer.append(outlier_weight)
            inlier_weight = weight.copy()
            inlier_weight[idx] = 0.0
            initializers[node.input[1]].CopyFrom(numpy_helper.from_array(inlier_weight, node.input[1]))
            output = node.output[0]
            node.input[0], node.output[0] = f"{stem}/inliers", f"{output}{OUTLIER_SUFFIX}/int8_part"
            fp32_nodes.append(f"{node.name}{OUTLIER_SUFFIX}")
            graph.node.extend([
                helper.make_node("MatMul", [f"{stem}/outliers", f"{node.name}{OUTLIER_SUFFIX}/w"],
                                 [f"{output}{OUTLIER_SUFFIX}/fp32_part"], name=fp32_nodes[-1]),
                helper.make_node("Add", [node.output[0], f"{output}{OUTLIER_SUFFIX}/fp32_part"], [output],
                                 name=f"{node.name}{OUTLIER_SUFFIX}/add"),
            ])
    wrapped = OnnxModel(model)
    wrapped.topological_sort()
    onnx.save(wrapped.model, str(out_path))
    return fp32_nodes, channels
