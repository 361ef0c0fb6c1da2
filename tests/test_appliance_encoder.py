"""The encoder worker serving a real INT8 ONNX encoder built by `orbox quantize encoder`."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from appliance_data.fixtures import (
    running_supervisor,
    site_config,
    wait_for,
    worker,
)

from appliance.clients import GenerationError, Unavailable
from hw_profiles import load_profile
from inference.encoder import load_encoder

TEXTS = ["Patient stable after laparoscopic cholecystectomy.", "患者术后生命体征平稳", "smoke in the field"]


def test_embeddings_match_the_loader_and_survive_a_worker_kill(encoder_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, supervisor={"workers": ["encoder"], "critical_workers": ["encoder"]})
    loader = load_encoder(encoder_bundle, load_profile("dev"), role="embedding")
    expected, expected_one = loader.embed(TEXTS), loader.embed(TEXTS[:1])  # dynamic INT8: batch-dependent
    with running_supervisor(encoder_bundle, config) as supervisor:
        entry = worker(supervisor.status(), "encoder")
        assert entry["state"] == "ready" and entry["info"]["roles"]["embedding"]["dim"] == expected.shape[1]
        vectors = supervisor.encoder.embed(TEXTS)
        assert vectors.shape == expected.shape and np.allclose(vectors, expected, atol=1e-6)
        many = [f"{text} ({index})" for index in range(14) for text in TEXTS]  # 42 texts: 3 batches
        assert np.allclose(supervisor.encoder.embed(many), loader.embed(many), atol=1e-6)
        wait_for(lambda: worker(supervisor.status(), "encoder")["last_progress"].get("progress") == 4, 2,
                 "progress counted per batch (1 + 3)")
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        with pytest.raises(GenerationError, match="no reranker model is loaded"):
            supervisor.encoder.rerank("query", ["doc"])
        os.kill(entry["pid"], signal.SIGKILL)
        with pytest.raises((Unavailable, GenerationError)):
            supervisor.encoder.embed(TEXTS)  # refused or lost while it restarts, never a hang
        wait_for(lambda: worker(supervisor.status(), "encoder")["state"] == "ready", 20, "the encoder restart")
        assert np.allclose(supervisor.encoder.embed(TEXTS[:1]), expected_one, atol=1e-6)


def test_corrupt_encoder_is_refused_while_the_llm_serves(encoder_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(encoder_bundle, bundle)
    model = bundle / "encoder" / "embedding" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0x01
    model.write_bytes(bytes(data))
    config = site_config(tmp_path, supervisor={"workers": ["encoder", "llm"], "critical_workers": ["llm"]})
    with running_supervisor(bundle, config) as supervisor:
        encoder = worker(supervisor.status(), "encoder")
        assert encoder["state"] == "failed" and "sha256" in encoder["detail"] and str(model) in encoder["detail"]
        with pytest.raises(Unavailable, match="encoder worker is failed"):
            supervisor.encoder.embed(TEXTS)
        assert supervisor.llm.submit({"prompt": "Hi", "max_tokens": 2}).result().usage.completion_tokens == 2
