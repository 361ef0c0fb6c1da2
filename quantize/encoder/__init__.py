"""`orbox quantize encoder`: a Hugging Face encoder becomes a gated INT8 ONNX (and OpenVINO) model bundle.

Stages, in order: `source` (read and check the checkpoint), `export` (FP32 ONNX and the box's runtime
files), `quantize` (INT8 recipes per ISA, with `outliers` and `openvino`; `calibration` texts), `gates`
(accuracy and latency against FP32 on the `evalset` texts), `publish` (choose a candidate and write the
model bundle); `cli` and `bench` on top.
"""
