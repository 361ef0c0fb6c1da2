"""OpenVINO IR for Intel iGPU/NPU profiles: NNCF INT8 from the plain FP32 ONNX export, or FP16 as fallback.

The IR is converted from the un-fused export: onnxruntime's fused contrib ops (Attention,
SkipLayerNormalization) are not ONNX standard and OpenVINO does its own fusion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantize.encoder.export import quiet


def _save(model: object, xml_path: Path, compress_to_fp16: bool) -> None:
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)


def save_int8_ir(onnx_path: Path, xml_path: Path, calibration_feeds: list[dict[str, np.ndarray]]) -> None:
    """nncf.quantize with the transformer preset (keeps softmax/layer-norm paths in float)."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    with quiet():
        quantized = nncf.quantize(model, nncf.Dataset(calibration_feeds), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration_feeds))
    _save(quantized, xml_path, compress_to_fp16=False)


def save_fp16_ir(onnx_path: Path, xml_path: Path) -> None:
    import openvino as ov

    _save(ov.convert_model(str(onnx_path)), xml_path, compress_to_fp16=True)
