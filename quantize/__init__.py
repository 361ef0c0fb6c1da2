"""quantize: the vendor-side toolchain.

Hugging Face checkpoints become GGUF k-quants (`quantize.llm`) and INT8 ONNX / OpenVINO encoders
(`quantize.encoder`). The two pipelines are mirror images, one module per stage in the same order:

    source -> export -> quantize -> gates -> publish     (plus cli and bench)

Each candidate is gated against its reference model and published into a model bundle whose
signed, reproducible manifest both pipelines write through `quantize.manifest`. Shared here too: the
bundled clinical text (`quantize.clinical_corpus`) and the tiny test LLMs (`quantize.tiny_models`).
"""
