"""Box-side loader: embeds like sentence-transformers, refuses corrupted bundles, runs without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from encoder_data.fixtures import minilm, tiny_bert  # noqa: F401 - fixtures

from appliance.encoder_runtime import Encoder, EncoderRuntimeError, load_encoder
from quantize.encoder_evalset import GATE_SENTENCES
from quantize.encoder_export import export_onnx, load_hf_tokenizer, write_runtime_files
from quantize.encoder_source import inspect_encoder

pytestmark = pytest.mark.xdist_group("encoder_minilm")


@pytest.fixture(scope="module")
def minilm_fp32(minilm, tmp_path_factory):  # noqa: F811
    """The real MiniLM exported to FP32 ONNX with the runtime files, as the build writes them."""
    root = tmp_path_factory.mktemp("minilm-fp32")
    source = inspect_encoder(minilm)
    write_runtime_files(source, root / "embedding", load_hf_tokenizer(source), openvino=False)
    return root / "embedding", export_onnx(source, root / "work")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_minilm_fp32_matches_sentence_transformers(minilm, minilm_fp32):  # noqa: F811
    from sentence_transformers import SentenceTransformer

    role_dir, onnx_path = minilm_fp32
    texts = [*GATE_SENTENCES, "  leading and trailing spaces  ", "x" * 3000]  # strip + truncation at 256 tokens
    reference = SentenceTransformer(str(minilm), device="cpu").encode(texts, convert_to_numpy=True)
    encoder = Encoder(role_dir, onnx_path)
    ours = encoder.embed(texts)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    assert np.min(_cosines(ours, reference)) > 1 - 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # modules.json has Normalize
    assert encoder.dim == 384 and encoder.max_seq_length == 256


def test_tiny_bert_matches_sentence_transformers(tiny_bert, tmp_path):  # noqa: F811
    from sentence_transformers import SentenceTransformer

    source = inspect_encoder(tiny_bert)
    write_runtime_files(source, tmp_path / "embedding", load_hf_tokenizer(source), openvino=False)
    encoder = Encoder(tmp_path / "embedding", export_onnx(source, tmp_path / "work"))
    reference = SentenceTransformer(str(tiny_bert), device="cpu").encode(list(GATE_SENTENCES))
    assert np.min(_cosines(encoder.embed(list(GATE_SENTENCES)), reference)) > 1 - 1e-5
    assert encoder.embed([]).shape == (0, 64)


def test_embedding_model_refuses_rerank(minilm_fp32):
    encoder = Encoder(*minilm_fp32)
    with pytest.raises(EncoderRuntimeError, match="cannot rerank"):
        encoder.rerank("q", ["d"])


def test_runtime_module_does_not_import_torch_or_transformers():
    code = ("import sys, appliance.encoder_runtime as r; import onnxruntime, tokenizers; "
            "bad = [m for m in ('torch', 'transformers', 'quantize') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_encoder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderRuntimeError, match="manifest.json: missing"):
        load_encoder(tmp_path)


def test_load_encoder_unknown_role(tmp_path):
    with pytest.raises(EncoderRuntimeError, match="role must be one of"):
        load_encoder(tmp_path, role="classifier")
