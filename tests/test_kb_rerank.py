"""The reranker path: a KB built with --reranker reorders the fused head the same way every time, ties by id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kb_data.fixtures import build_options

from knowledge_base import KnowledgeBase
from knowledge_base.build import build_kb
from knowledge_base.search import RERANK_DEPTH


@pytest.fixture(scope="module")
def reranker_bundle(tiny_reranker: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny XLM-R cross-encoder quantized into a dev-profile model bundle (the latency gate off: a toy model)."""
    from quantize.encoder.gates import GateThresholds
    from quantize.encoder.publish import EncoderBuildOptions, build_encoder_bundle

    out = tmp_path_factory.mktemp("reranker") / "bundle"
    build_encoder_bundle(EncoderBuildOptions(model_dir=tiny_reranker, profile="dev", out_dir=out, task="reranker",
                                             thresholds=GateThresholds(min_speedup=0.0)))
    return out


def test_a_kb_with_a_reranker_ranks_deterministically(reranker_bundle: Path, kb_encoder_bundle: Path,
                                                      synthetic_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(synthetic_corpus[0] / "rules", src / "rules")
    out = tmp_path / "kb"
    build_kb(build_options(src, out, kb_encoder_bundle, reranker_bundle=reranker_bundle), warn=lambda _: None)
    with KnowledgeBase.open(out) as kb:
        assert kb.reranker is not None
        for query in ("How many nurses perform the instrument count?", "器械清点需要几名护士？"):
            first = kb.ranked(query)
            assert kb.ranked(query) == first  # asked twice, the same order and scores
            head = first[:RERANK_DEPTH]
            assert head == sorted(head, key=lambda pair: (-pair[1], pair[0]))  # best first, ties by chunk id
            assert {chunk_id for chunk_id, _ in head} == {chunk_id for chunk_id, _ in kb.fused(query)[:RERANK_DEPTH]}
