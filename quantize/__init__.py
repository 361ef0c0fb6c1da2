"""quantize: the vendor-side toolchain.

Hugging Face checkpoints become GGUF k-quants and INT8 ONNX / OpenVINO artifacts, each gated
against its reference model and described by a signed, reproducible manifest
(`quantize.manifest`): `orbox quantize llm` (llm_*) and `orbox quantize encoder` (encoder_*).
"""
