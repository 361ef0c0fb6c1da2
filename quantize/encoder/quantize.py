"""INT8 recipes for encoder ONNX graphs: which scheme a profile's ISA calls for, and applying it.

docs/quantization.md#int8-by-isa: VNNI x86 and ARM run U8S8 per-channel; AVX2/AVX-512 without VNNI need U8U8
or reduce_range (VPMADDUBSW saturates on full-range S8 weights); static quantization is QDQ
S8S8. When a recipe misses a gate, the fallback order is reduce_range -> U8U8 -> keep the outlier
activation channels in FP32 (quantize.encoder.outliers) -> exclude the most sensitive nodes -> FP32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from quantize.encoder.export import quiet
from quantize.encoder.outliers import split_outliers
from quantize.encoder.source import EncoderInputError

SCHEMES = ("u8s8", "u8u8", "reduce_range", "qdq_s8s8")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# Graph ops that carry the weights; quantizing Gather/EmbedLayerNormalization saves bytes, not time.
DYNAMIC_OPS = ["MatMul", "Attention"]
STATIC_OPS = ["MatMul"]
# Outlier thresholds tried in order (x the median channel peak): fewest FP32 channels first.
OUTLIER_RATIOS = (16.0, 10.0, 6.0, 4.0)


@dataclass(frozen=True)
class Int8Recipe:
    """One way of turning the FP32 graph into INT8; `name` is what the manifest records."""

    scheme: str
    per_channel: bool
    outlier_ratio: float | None = None
    exclude_nodes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        name = self.scheme + ("-per-channel" if self.per_channel else "-per-tensor")
        name += f"-fp32-outliers{self.outlier_ratio:g}" if self.outlier_ratio else ""
        return name + (f"-exclude{len(self.exclude_nodes)}" if self.exclude_nodes else "")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "scheme": self.scheme, "per_channel": self.per_channel,
                "outlier_ratio": self.outlier_ratio, "exclude_nodes": list(self.exclude_nodes)}


def recipe_for_profile(profile: Any) -> Int8Recipe:
    """The profile's INT8 scheme, checked against its ISA; EncoderInputError when the ISA has none."""
    scheme = profile.encoder.int8_scheme
    arch = profile.cpu.arch
    flags = set(profile.cpu.isa_flags)
    where = f"profile {profile.name!r} (arch {arch}, isa_flags {sorted(flags)})"
    if scheme == "none":
        raise EncoderInputError(
            f"{where}: encoder.int8_scheme is 'none', so this ISA has no INT8 scheme; "
            f"expected one of {', '.join(SCHEMES)}. Use a profile with VNNI, AVX2 or ARM NEON for INT8 encoders"
        )
    if scheme not in SCHEMES:
        raise EncoderInputError(f"{where}: encoder.int8_scheme must be one of {', '.join(SCHEMES)}, found {scheme!r}")
    if arch == "x86_64":
        has_vnni = bool(flags & set(VNNI_FLAGS))
        if not has_vnni and "avx2" not in flags:
            raise EncoderInputError(
                f"{where}: the ISA has no INT8 scheme: onnxruntime's INT8 kernels need avx2 or VNNI "
                f"({', '.join(VNNI_FLAGS)}), found neither"
            )
        if scheme == "u8s8" and not has_vnni:
            raise EncoderInputError(
                f"{where}: encoder.int8_scheme 'u8s8' needs VNNI ({', '.join(VNNI_FLAGS)}); without it VPMADDUBSW "
                "saturates. Expected 'u8u8' or 'reduce_range' for this ISA"
            )
    elif arch != "aarch64":
        raise EncoderInputError(f"{where}: cpu.arch must be x86_64 or aarch64, found {arch!r}")
    return Int8Recipe(scheme=scheme, per_channel=bool(profile.encoder.per_channel))


def fallback_chain(first: Int8Recipe) -> list[Int8Recipe]:
    """The profile's recipe, then reduce_range, then U8U8 (each once)."""
    chain = [first]
    for scheme in ("reduce_range", "u8u8"):
        if scheme != first.scheme:
            chain.append(Int8Recipe(scheme=scheme, per_channel=first.per_channel))
    return chain


def outlier_chain(first: Int8Recipe) -> list[Int8Recipe]:
    """The profile's scheme with ever more outlier channels kept in FP32."""
    return [replace(first, outlier_ratio=ratio) for ratio in OUTLIER_RATIOS]


def quantizable_nodes(model_path: Path) -> list[str]:
    """Names of the nodes a dynamic recipe quantizes, in graph order (the candidates for exclusion)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type in DYNAMIC_OPS and len(node.input) > 1 and node.input[1] in initializers]


def with_exclusions(recipe: Int8Recipe, nodes: list[str]) -> Int8Recipe:
    return replace(recipe, exclude_nodes=tuple(nodes))


class _FeedReader:
    """onnxruntime CalibrationDataReader over pre-tokenized feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._iter: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)


def quantize_graph(fp32_path: Path, out_path: Path, recipe: Int8Recipe,
                   calibration_feeds: Callable[[], list[dict[str, np.ndarray]]]) -> dict[str, int]:
    """Write the INT8 graph for `recipe`; calibration feeds are computed only when the recipe needs them.

    Returns facts for the manifest (how many activation channels stayed FP32)."""
    excluded = list(recipe.exclude_nodes)
    facts = {"fp32_outlier_channels": 0}
    source = fp32_path
    if recipe.outlier_ratio:
        source = out_path.with_name(out_path.stem + ".split.onnx")
        fp32_nodes, facts["fp32_outlier_channels"] = split_outliers(fp32_path, source, calibration_feeds(),
                                                                    recipe.outlier_ratio)
        excluded += fp32_nodes
    with quiet():
        _quantize(source, out_path, recipe, excluded, calibration_feeds)
    return facts


def _quantize(source: Path, out_path: Path, recipe: Int8Recipe, excluded: list[str],
              calibration_feeds: Callable[[], list[dict[str, np.ndarray]]]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if recipe.scheme == "qdq_s8s8":
        quantize_static(
            str(source), str(out_path), _FeedReader(calibration_feeds()),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=STATIC_OPS, per_channel=recipe.per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod.MinMax, extra_options={"ActivationSymmetric": True, **options},
        )
    else:
        quantize_dynamic(
            str(source), str(out_path), op_types_to_quantize=DYNAMIC_OPS, per_channel=recipe.per_channel,
            reduce_range=recipe.scheme == "reduce_range",
            weight_type=QuantType.QUInt8 if recipe.scheme == "u8u8" else QuantType.QInt8,
            nodes_to_exclude=excluded, extra_options=options,
        )
