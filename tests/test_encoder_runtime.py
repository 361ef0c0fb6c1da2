"""Box-side loader: embeds like sentence-transformers, refuses corrupted bundles, runs without torch."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference import encoder as encoder_runtime
from inference.encoder import Encoder, EncoderRuntimeError, load_encoder
from quantize.encoder.evalset import GATE_SENTENCES
from quantize.encoder.export import export_onnx, load_hf_tokenizer, write_runtime_files
from quantize.encoder.source import inspect_encoder
from quantize.manifest import update_manifest

pytestmark = pytest.mark.xdist_group("encoder_minilm")
BOX_FORBIDDEN = ("torch", "transformers", "optimum", "sentence_transformers", "quantize")


@pytest.fixture(scope="module")
def minilm_fp32(minilm, tmp_path_factory):
    """The real MiniLM exported to FP32 ONNX with the runtime files, as the build writes them."""
    root = tmp_path_factory.mktemp("minilm-fp32")
    source = inspect_encoder(minilm)
    write_runtime_files(source, root / "embedding", load_hf_tokenizer(source), openvino=False)
    return root / "embedding", export_onnx(source, root / "work")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_minilm_fp32_matches_sentence_transformers(minilm, minilm_fp32):
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


def test_tiny_bert_matches_sentence_transformers(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    source = inspect_encoder(tiny_bert)
    write_runtime_files(source, tmp_path / "embedding", load_hf_tokenizer(source), openvino=False)
    encoder = Encoder(tmp_path / "embedding", export_onnx(source, tmp_path / "work"))
    reference = SentenceTransformer(str(tiny_bert), device="cpu").encode(list(GATE_SENTENCES))
    assert np.min(_cosines(encoder.embed(list(GATE_SENTENCES)), reference)) > 1 - 1e-5
    assert encoder.embed([]).shape == (0, 64)


def test_tiny_xlmr_reranker_matches_sentence_transformers_cross_encoder(tiny_reranker, tmp_path):
    from sentence_transformers import CrossEncoder

    source = inspect_encoder(tiny_reranker)
    write_runtime_files(source, tmp_path / "reranker", load_hf_tokenizer(source), openvino=False)
    encoder = Encoder(tmp_path / "reranker", export_onnx(source, tmp_path / "work"))
    query, docs = "术后镇痛 postoperative pain", list(GATE_SENTENCES)
    reference = CrossEncoder(str(tiny_reranker), device="cpu").predict([(query, doc) for doc in docs])
    ours = encoder.rerank(query, docs)
    assert ours.shape == (len(docs),) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert np.ptp(reference) > 1e-3  # the scores differ between documents, so the comparison means something
    with pytest.raises(EncoderRuntimeError, match="cannot embed"):
        encoder.embed(["x"])


def test_embedding_model_refuses_rerank(minilm_fp32):
    encoder = Encoder(*minilm_fp32)
    with pytest.raises(EncoderRuntimeError, match="cannot rerank"):
        encoder.rerank("q", ["d"])


def test_runtime_source_imports_nothing_of_quantize_torch_or_transformers():
    """Every import statement of the module, including the lazy ones inside functions (OpenVINO backend)."""
    tree = ast.parse(Path(encoder_runtime.__file__).read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    roots = {name.split(".")[0] for name in names}
    assert roots >= {"numpy", "onnxruntime", "openvino", "tokenizers"}  # the walk saw the function-level imports
    assert roots.isdisjoint(BOX_FORBIDDEN), sorted(roots & set(BOX_FORBIDDEN))


@pytest.fixture(scope="module")
def minilm_bundle(minilm_fp32, tmp_path_factory):
    """A one-role bundle with the FP32 MiniLM, listed in manifest.json as the vendor build lists it."""
    role_dir, onnx_path = minilm_fp32
    bundle = tmp_path_factory.mktemp("minilm-bundle")
    shutil.copytree(role_dir, bundle / "encoder" / "embedding")
    shutil.copyfile(onnx_path, bundle / "encoder" / "embedding" / "model.onnx")
    artifacts = {p.relative_to(bundle).as_posix(): {"kind": "x", "role": "embedding"}
                 for p in (bundle / "encoder").rglob("*") if p.is_file()}
    update_manifest(bundle, "server-avx512-vnni", "encoder", {"embedding": {}}, artifacts)
    return bundle


def test_box_loader_runs_with_torch_transformers_and_quantize_unimportable(minilm_bundle, minilm_fp32):
    """The box path end to end (manifest check, load, tokenize, embed) in a fresh interpreter where importing
    any of BOX_FORBIDDEN raises ImportError."""
    code = "\n".join([
        "import sys",
        f"for name in {BOX_FORBIDDEN!r}:",
        "    sys.modules[name] = None  # import of it now raises ImportError",
        "from inference.encoder import load_encoder",
        f"vectors = load_encoder({str(minilm_bundle)!r}).embed(['腹腔镜胆囊切除术', 'laparoscopy'])",
        "print(vectors.shape, float(vectors[0] @ vectors[1]))",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("(2, 384)")
    expected = Encoder(*minilm_fp32).embed(["腹腔镜胆囊切除术", "laparoscopy"])
    assert float(result.stdout.split()[-1]) == pytest.approx(float(expected[0] @ expected[1]), abs=1e-6)


@pytest.mark.parametrize(("name", "change", "message"), [
    ("encoder.json", lambda doc: [doc], r"encoder.json: expected a JSON object, found list"),
    ("encoder.json", lambda doc: {**doc, "task": "classifier"}, r"encoder.json: field 'task' must be one of"),
    ("encoder.json", lambda doc: {**doc, "dim": "wide"}, r"embedding: encoder settings hold a value of the wrong"),
    ("1_Pooling/config.json", lambda doc: [doc], r"1_Pooling/config.json: expected a JSON object"),
    ("modules.json", lambda doc: {"modules": doc}, r"modules.json: expected a list of module objects"),
    ("sentence_bert_config.json", lambda doc: {}, r"lack field 'max_seq_length'"),
])
def test_malformed_runtime_settings_name_the_file(minilm_fp32, tmp_path, name, change, message):
    role_dir = tmp_path / "embedding"
    shutil.copytree(minilm_fp32[0], role_dir)
    path = role_dir / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(EncoderRuntimeError, match=message):
        Encoder(role_dir, minilm_fp32[1])


def test_load_encoder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderRuntimeError, match="manifest.json: missing"):
        load_encoder(tmp_path)


def test_load_encoder_unknown_role(tmp_path):
    with pytest.raises(EncoderRuntimeError, match="role must be one of"):
        load_encoder(tmp_path, role="classifier")
