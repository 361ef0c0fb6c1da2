"""quantize: the vendor-side toolchain.

Hugging Face checkpoints become GGUF k-quants and INT8 ONNX / OpenVINO artifacts, each gated
against its reference model and described by a signed, reproducible manifest
(`quantize.manifest`). The converters themselves land with issues 4 and 5.
"""
