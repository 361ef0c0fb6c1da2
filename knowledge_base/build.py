"""`orbox kb build`: read a folder of documents, chunk, index (FTS5 + dense), hash, sign, publish atomically.

The KB is built in a temporary directory next to the destination, every file is fsynced, and
only then is it renamed into place, so a crash or a refused document never leaves a half-written
KB behind. An existing KB at the destination is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from inference.encoder import Encoder, l2_normalize, load_encoder
from knowledge_base.chunking import Chunk, ChunkingParameters, chunk_document
from knowledge_base.dense import save_matrix
from knowledge_base.documents import ParsedDocument, read_document
from knowledge_base.errors import DocumentError, KnowledgeBaseError
from knowledge_base.manifest import DATABASE, EMBEDDINGS, read_kb_manifest, write_kb_manifest
from knowledge_base.store import SECTION_SEPARATOR, StoreWriter
from knowledge_base.terms import segmenter_identity
from primitives.artifacts import MANIFEST_NAME, file_digest, load_manifest, verify_artifact
from primitives.atomic import fsync_dir
from primitives.signing import sign_bundle

EMBED_BATCH = 64  # a multiple of the encoder's own batch, so progress steps do not change the batches


@dataclass(frozen=True)
class BuildOptions:
    src_dir: Path
    out_dir: Path
    encoder_bundle: Path
    reranker_bundle: Path | None = None
    sign_key: Path | None = None
    profile: Any = None  # a hw_profiles.Profile, or None for plain CPU onnxruntime
    on_error: Literal["stop", "skip"] = "stop"
    chunking: ChunkingParameters = field(default_factory=ChunkingParameters)
    progress: bool = True
    dense_languages: tuple[str, ...] = ("en", "zh")  # query languages the embedding encoder was trained on


@dataclass
class BuildReport:
    documents: int
    chunks: int
    skipped: list[str]


@dataclass(frozen=True)
class IndexedDocument:
    doc_id: str
    source_sha256: str
    source_size: int
    parsed: ParsedDocument
    chunks: list[Chunk]

    def header(self, chunk: Chunk) -> str:
        """Title and heading path: indexed and embedded with the chunk, never cited."""
        section = chunk.section[1:] if chunk.section[:1] == (self.parsed.title,) else chunk.section
        return SECTION_SEPARATOR.join((self.parsed.title, *section))


def source_files(src_dir: Path) -> list[Path]:
    """Every non-hidden file under src_dir, in a stable order (by relative path)."""
    if not src_dir.is_dir():
        raise KnowledgeBaseError(f"{src_dir}: no such source directory")
    files = sorted(path for path in src_dir.rglob("*")
                   if path.is_file() and not any(part.startswith(".") for part in path.relative_to(src_dir).parts))
    if not files:
        raise KnowledgeBaseError(f"{src_dir}: no documents found")
    return files


def read_sources(options: BuildOptions, warn: Callable[[str], None]) -> tuple[list[IndexedDocument], list[str]]:
    documents, skipped = [], []
    files = source_files(options.src_dir)
    for path in tqdm(files, desc="reading documents", unit="doc", file=sys.stderr, disable=not options.progress):
        try:
            parsed = read_document(path)
        except DocumentError as exc:
            if options.on_error == "stop":
                raise
            warn(f"skipped {exc}")
            skipped.append(str(exc))
            continue
        digest = file_digest(path)
        documents.append(IndexedDocument(path.relative_to(options.src_dir).as_posix(), digest.sha256, digest.size,
                                         parsed, chunk_document(parsed, options.chunking)))
    if not documents:
        raise KnowledgeBaseError(f"{options.src_dir}: none of its {len(files)} files could be indexed")
    return documents, skipped


def embed_chunks(encoder: Encoder, texts: list[str], progress: bool) -> np.ndarray:
    vectors = np.zeros((len(texts), encoder.dim), np.float32)
    with tqdm(total=len(texts), desc="embedding chunks", unit="chunk", file=sys.stderr, disable=not progress) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            vectors[start:start + len(batch)] = encoder.embed(batch)
            bar.update(len(batch))
    return l2_normalize(vectors)


def embedding_text(document: IndexedDocument, chunk: Chunk) -> str:
    return f"{document.header(chunk)}\n{document.parsed.text[chunk.start:chunk.end]}"


def copy_encoder(bundle: Path, role: str, destination: Path) -> dict[str, dict[str, Any]]:
    """Copy one verified encoder role into the KB; returns its manifest entries (extra fields kept)."""
    entries = {path: entry for path, entry in load_manifest(bundle)["artifacts"].items()
               if path.startswith(f"encoder/{role}/")}
    copied = {}
    for relpath, entry in sorted(entries.items()):
        target = destination / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / relpath, target)
        problems = verify_artifact(destination, relpath, entry)
        if problems:
            raise KnowledgeBaseError("; ".join(problems))
        copied[relpath] = {key: value for key, value in entry.items() if key not in ("sha256", "size")}
    return copied


def _encoder_record(bundle: Path, encoder: Encoder) -> dict[str, Any]:
    return {"model_id": encoder.model_id, "model_sha256": encoder.sha256, "dim": encoder.dim,
            "source_manifest_sha256": file_digest(bundle / MANIFEST_NAME).sha256}


def write_kb(work: Path, options: BuildOptions, documents: list[IndexedDocument]) -> int:
    """Everything inside the work directory: database, vectors, encoders, manifest, signature."""
    encoder = load_encoder(options.encoder_bundle, options.profile, "embedding")
    reranker = load_encoder(options.reranker_bundle, options.profile, "reranker") if options.reranker_bundle else None
    writer = StoreWriter(work / (DATABASE + ".scratch"))
    texts = []
    for document in documents:
        writer.add_document(document.doc_id, document.parsed.title, document.parsed.format, document.source_sha256,
                            document.parsed.text,
                            [(SECTION_SEPARATOR.join(chunk.section), chunk.page, chunk.start, chunk.end,
                              [(s.start, s.end) for s in chunk.sentences], document.header(chunk))
                             for chunk in document.chunks])
        texts.extend(embedding_text(document, chunk) for chunk in document.chunks)
    writer.publish(work / DATABASE)
    save_matrix(work / EMBEDDINGS, embed_chunks(encoder, texts, options.progress))
    artifacts: dict[str, dict[str, Any]] = {DATABASE: {"kind": "sqlite-fts5"}, EMBEDDINGS: {"kind": "dense-f32"}}
    artifacts.update(copy_encoder(options.encoder_bundle, "embedding", work))
    encoders = {"embedding": _encoder_record(options.encoder_bundle, encoder)}
    if reranker is not None and options.reranker_bundle is not None:
        artifacts.update(copy_encoder(options.reranker_bundle, "reranker", work))
        encoders["reranker"] = _encoder_record(options.reranker_bundle, reranker)
    profile = options.profile.name if options.profile is not None else load_manifest(options.encoder_bundle)["profile"]
    section = {
        "chunking": options.chunking.as_dict(),
        "segmenter": segmenter_identity(),
        "encoders": encoders,
        "documents": {d.doc_id: {"sha256": d.source_sha256, "size": d.source_size, "format": d.parsed.format,
                                 "chunks": len(d.chunks)} for d in documents},
        "dense_languages": sorted(options.dense_languages),
        "counts": {"documents": len(documents), "chunks": len(texts)},
    }
    write_kb_manifest(work, profile, section, artifacts)
    if options.sign_key is not None:
        sign_bundle(work, options.sign_key)
    return len(texts)


def _fsync_tree(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            with open(Path(directory) / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(directory))


def _publish(work: Path, out_dir: Path) -> None:
    """Rename the finished KB into place; an older KB there is moved aside first and removed after."""
    if not out_dir.exists():
        os.replace(work, out_dir)
    else:
        read_kb_manifest(out_dir)  # refuse to replace anything that is not a KB
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "kb")
        os.replace(work, out_dir)
        shutil.rmtree(old)
    fsync_dir(out_dir.parent)


def build_kb(options: BuildOptions, warn: Callable[[str], None] = print) -> BuildReport:
    """Build and publish a KB; DocumentError / KnowledgeBaseError name what was refused."""
    if options.out_dir.exists() and not (options.out_dir / MANIFEST_NAME).is_file():
        raise KnowledgeBaseError(f"{options.out_dir}: exists and is not a KB; refusing to replace it")
    documents, skipped = read_sources(options, warn)
    options.out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{options.out_dir.name}.building.", dir=options.out_dir.parent))
    os.chmod(work, 0o755)  # mkdtemp makes it private; the box's service user reads the KB
    try:
        chunks = write_kb(work, options, documents)
        _fsync_tree(work)
        _publish(work, options.out_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(work)
    return BuildReport(documents=len(documents), chunks=chunks, skipped=skipped)
