"""`orbox kb build/verify/search/eval` on the seeded synthetic corpus with the real INT8 MiniLM."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kb_data.fixtures import DENSE_LANGUAGES, build_options

from knowledge_base import DocumentError, KnowledgeBase, KnowledgeBaseError
from knowledge_base.build import build_kb
from knowledge_base.manifest import verify_kb


def orbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orbox", "kb", *args], capture_output=True, text=True, timeout=300)


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_identical_inputs_give_a_byte_identical_kb(synthetic_kb: Path, synthetic_corpus: tuple[Path, Path],
                                                   kb_encoder_bundle: Path, tmp_path: Path) -> None:
    build_kb(build_options(synthetic_corpus[0], tmp_path / "again", kb_encoder_bundle), warn=lambda _: None)
    first, second = _files(synthetic_kb), _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    manifest = json.loads(first["manifest.json"])
    section = manifest["sections"]["knowledge_base"]
    assert set(manifest["artifacts"]) == set(first) - {"manifest.json"}
    assert section["documents"] and all(len(d["sha256"]) == 64 for d in section["documents"].values())
    assert section["encoders"]["embedding"]["model_sha256"] and section["chunking"]["max_chars"] > 0


def test_every_search_hit_is_an_exact_span_of_its_document(synthetic_kb: Path) -> None:
    with KnowledgeBase.open(synthetic_kb) as kb:
        for query in ("禁用", "adult dose", "首选术式", "How many nurses perform the instrument count?"):
            hits = kb.search(query, top_k=5)
            assert hits and len({hit.chunk_id for hit in hits}) == len(hits)
            for hit in hits:
                assert hit.text == kb.document_text(hit.doc_id)[hit.start_char:hit.end_char]
            assert kb.search(query, top_k=5) == hits  # asked twice, answered the same


def test_eval_passes_its_gates_on_the_synthetic_corpus(synthetic_kb: Path, synthetic_corpus: tuple[Path, Path]) -> None:
    result = orbox("eval", str(synthetic_kb), "--qrels", str(synthetic_corpus[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("lexical", "dense", "hybrid")}
    assert rows["hybrid"] >= 0.90 and rows["hybrid"] >= max(rows["lexical"], rows["dense"])


def test_eval_exits_non_zero_when_a_gate_fails(synthetic_kb: Path, tmp_path: Path) -> None:
    qrels = tmp_path / "impossible.jsonl"
    qrels.write_text(json.dumps({"id": "q1", "lang": "en", "query": "adult dose", "answerable": True,
                                 "doc_id": "handbook/en/drug-0000.md", "answer": "A sentence that is nowhere."}) + "\n")
    result = orbox("eval", str(synthetic_kb), "--qrels", str(qrels))
    assert result.returncode == 1 and "gate failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_tampered_kb_is_refused_and_a_signed_one_verifies(synthetic_kb: Path, tmp_path: Path) -> None:
    from primitives.signing import generate_keypair, sign_bundle

    copy = tmp_path / "kb"
    shutil.copytree(synthetic_kb, copy)
    key, pub = generate_keypair(tmp_path / "site")
    sign_bundle(copy, key)
    assert orbox("verify", str(copy), "--pubkey", str(pub)).returncode == 0
    with open(copy / "embeddings.npy", "r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x01" if handle.read(1) != b"\x01" else b"\x02")
    assert any("embeddings.npy" in problem for problem in verify_kb(copy))
    with pytest.raises(KnowledgeBaseError, match="does not verify"):
        KnowledgeBase.open(copy)
    result = orbox("search", str(copy), "dose")
    assert result.returncode == 1 and "embeddings.npy" in result.stderr and "Traceback" not in result.stderr


def test_bad_queries_and_missing_kb_are_one_line_errors(synthetic_kb: Path, tmp_path: Path) -> None:
    with KnowledgeBase.open(synthetic_kb) as kb:
        with pytest.raises(KnowledgeBaseError, match="query is empty"):
            kb.search("   ")
        with pytest.raises(KnowledgeBaseError, match="top_k must be"):
            kb.search("dose", top_k=0)
    result = orbox("search", str(tmp_path / "nowhere"), "dose")
    assert result.returncode == 1 and "no such KB directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _corpus_with_bad_file(synthetic_corpus: tuple[Path, Path], tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(synthetic_corpus[0] / "rules", src / "rules")
    (src / "rules" / "scan.pdf").write_bytes(b"%PDF-1.4\nnot a pdf at all")
    return src


def test_on_error_stop_leaves_nothing_behind(synthetic_corpus: tuple[Path, Path], kb_encoder_bundle: Path,
                                             tmp_path: Path) -> None:
    src = _corpus_with_bad_file(synthetic_corpus, tmp_path)
    with pytest.raises(DocumentError, match=r"scan\.pdf"):
        build_kb(build_options(src, tmp_path / "out" / "kb", kb_encoder_bundle), warn=lambda _: None)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_on_error_skip_names_the_file_and_builds_the_rest(synthetic_corpus: tuple[Path, Path],
                                                          kb_encoder_bundle: Path, tmp_path: Path) -> None:
    src = _corpus_with_bad_file(synthetic_corpus, tmp_path)
    out = tmp_path / "kb"
    result = orbox("build", str(src), "--out", str(out), "--encoder", str(kb_encoder_bundle), "--on-error", "skip",
                   "--dense-languages", ",".join(DENSE_LANGUAGES))
    assert result.returncode == 0, result.stderr
    assert "scan.pdf" in result.stderr and "skipped" in result.stdout
    assert verify_kb(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kb.")] == []  # no temp dir left
    inspect = orbox("inspect", str(out))
    assert inspect.returncode == 0 and "rules/en/department-0000.txt" in inspect.stdout


def test_sentences_of_a_hit_are_exact_spans_inside_it(synthetic_kb: Path) -> None:
    with KnowledgeBase.open(synthetic_kb) as kb:
        for hit in kb.search("contraindicated", top_k=3) + kb.search("禁用", top_k=3):
            sentences = kb.sentences(hit.chunk_id)
            text = kb.document_text(hit.doc_id)
            assert sentences and all(s.chunk_id == hit.chunk_id and s.doc_id == hit.doc_id for s in sentences)
            assert all(s.text == text[s.start_char:s.end_char] for s in sentences)
            assert all(hit.start_char <= s.start_char < s.end_char <= hit.end_char for s in sentences)
            assert [s.start_char for s in sentences] == sorted(s.start_char for s in sentences)
        with pytest.raises(KnowledgeBaseError, match="no such chunk"):
            kb.sentences(10**9)
