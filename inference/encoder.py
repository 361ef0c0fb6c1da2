"""Box-side encoder loader: verified INT8 ONNX / OpenVINO models that embed and rerank like sentence-transformers.

The box has no torch and no transformers. Tokenization uses the `tokenizers` package with the
exact tokenizer.json the vendor build wrote; pooling and normalisation follow the carried
sentence-transformers files (modules.json, 1_Pooling/config.json, sentence_bert_config.json).
Every file is checked against the bundle's manifest.json (sha256) before anything is loaded,
because ext4 returns a flipped byte silently.

Layout of one role inside a bundle::

    encoder/<role>/encoder.json               task, model id, output name, model files, padding
    encoder/<role>/tokenizer.json
    encoder/<role>/sentence_bert_config.json  max_seq_length, do_lower_case
    encoder/<role>/modules.json               (embedding) Transformer, Pooling[, Normalize]
    encoder/<role>/1_Pooling/config.json      (embedding) pooling modes
    encoder/<role>/model.onnx
    encoder/<role>/openvino/model.xml|.bin    (OpenVINO profiles)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primitives.artifacts import verify_artifact

ENCODER_FORMAT = "orbox.encoder/1"
ROLES = ("embedding", "reranker")
# sentence-transformers concatenates the enabled modes in this order.
POOLING_ORDER = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens", "lasttoken")
NORMALIZE_MODULE = "sentence_transformers.models.Normalize"
BATCH_SIZE = 16
# onnxruntime's SkipLayerNormalization CPU kernel measured 7x slower than Add + LayerNormalization at
# one thread (onnxruntime 1.31), which cost INT8 encoders ~15 % end to end; keep the unfused pair.
ORT_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


class EncoderRuntimeError(Exception):
    """The bundle's encoder cannot be loaded or used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EncoderSettings:
    """Everything besides the weights that decides the numbers an encoder returns."""

    task: str
    model_id: str
    dim: int
    output_name: str
    onnx_file: str
    openvino_file: str | None
    pad_id: int
    pad_token: str
    max_seq_length: int
    do_lower_case: bool
    pooling_modes: tuple[str, ...]
    normalize: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise EncoderRuntimeError(f"{path}: missing") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderRuntimeError(f"{path}: not valid JSON ({exc})") from exc


def _read_object(path: Path) -> dict[str, Any]:
    document = _read_json(path)
    if not isinstance(document, dict):
        raise EncoderRuntimeError(f"{path}: expected a JSON object, found {type(document).__name__}")
    return document


def read_settings(role_dir: str | Path) -> EncoderSettings:
    """Parse encoder.json and the carried sentence-transformers files of one role directory."""
    root = Path(role_dir)
    meta = _read_object(root / "encoder.json")
    if meta.get("format") != ENCODER_FORMAT:
        raise EncoderRuntimeError(
            f"{root / 'encoder.json'}: field 'format' must be {ENCODER_FORMAT!r}, found {meta.get('format')!r}"
        )
    if meta.get("task") not in ROLES:
        raise EncoderRuntimeError(
            f"{root / 'encoder.json'}: field 'task' must be one of {', '.join(ROLES)}, found {meta.get('task')!r}"
        )
    st_config = _read_object(root / "sentence_bert_config.json")
    modes: tuple[str, ...] = ()
    normalize = False
    if meta.get("task") == "embedding":
        pooling = _read_object(root / "1_Pooling" / "config.json")
        modes = tuple(mode for mode in POOLING_ORDER if pooling.get(f"pooling_mode_{mode}"))
        if not modes:
            raise EncoderRuntimeError(f"{root / '1_Pooling' / 'config.json'}: no supported pooling mode enabled")
        modules = _read_json(root / "modules.json")
        if not isinstance(modules, list) or not all(isinstance(module, dict) for module in modules):
            raise EncoderRuntimeError(f"{root / 'modules.json'}: expected a list of module objects, found {modules!r}")
        normalize = any(module.get("type") == NORMALIZE_MODULE for module in modules)
    try:
        return EncoderSettings(
            task=meta["task"],
            model_id=meta["model_id"],
            dim=int(meta["dim"]),
            output_name=meta["output"],
            onnx_file=meta["onnx"],
            openvino_file=meta.get("openvino"),
            pad_id=int(meta["pad_id"]),
            pad_token=meta["pad_token"],
            max_seq_length=int(st_config["max_seq_length"]),
            do_lower_case=bool(st_config.get("do_lower_case", False)),
            pooling_modes=modes,
            normalize=normalize,
        )
    except KeyError as exc:
        raise EncoderRuntimeError(f"{root}: encoder settings lack field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise EncoderRuntimeError(f"{root}: encoder settings hold a value of the wrong type ({exc})") from exc


def pool(hidden: np.ndarray, mask: np.ndarray, modes: tuple[str, ...]) -> np.ndarray:
    """sentence-transformers' Pooling module in NumPy (right-padded batches)."""
    mask_f = mask.astype(hidden.dtype)[:, :, None]
    counts = np.maximum(mask_f.sum(axis=1), 1e-9)
    parts = []
    for mode in modes:
        if mode == "cls_token":
            parts.append(hidden[:, 0])
        elif mode == "max_tokens":
            parts.append(np.where(mask_f > 0, hidden, np.float32(-1e9)).max(axis=1))
        elif mode == "mean_tokens":
            parts.append((hidden * mask_f).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            parts.append((hidden * mask_f).sum(axis=1) / np.sqrt(counts))
        elif mode == "lasttoken":
            parts.append(hidden[np.arange(hidden.shape[0]), mask.sum(axis=1) - 1])
    return np.concatenate(parts, axis=1).astype(np.float32)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class _OrtBackend:
    def __init__(self, model_path: Path, threads: int, providers: list[str] | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        available = set(ort.get_available_providers())
        chosen = [p for p in (providers or []) if p in available and p != "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model_path), options, providers=[*chosen, "CPUExecutionProvider"],
                                            disabled_optimizers=ORT_DISABLED_OPTIMIZERS)
        self.input_names = [node.name for node in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray], output_name: str) -> np.ndarray:
        return self.session.run([output_name], feeds)[0]


class _OpenVinoBackend:
    def __init__(self, model_path: Path, threads: int, device: str) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads} if device == "CPU" else {}
        self.compiled = core.compile_model(core.read_model(str(model_path)), device, config)
        self.input_names = [port.any_name for port in self.compiled.inputs]

    def run(self, feeds: dict[str, np.ndarray], output_name: str) -> np.ndarray:
        return np.asarray(self.compiled(feeds)[self.compiled.output(output_name)])


class Encoder:
    """One loaded encoder: `embed` for embedding models, `rerank` for cross-encoders."""

    def __init__(self, role_dir: str | Path, model_path: str | Path | None = None, *, backend: str = "onnxruntime",
                 threads: int = 1, providers: list[str] | None = None, device: str = "CPU",
                 sha256: str | None = None) -> None:
        from tokenizers import Tokenizer

        root = Path(role_dir)
        self.settings = read_settings(root)
        self.backend_name = backend
        if model_path is None:
            relpath = self.settings.openvino_file if backend == "openvino" else self.settings.onnx_file
            if relpath is None:
                raise EncoderRuntimeError(f"{root / 'encoder.json'}: no {backend} model in this bundle")
            model_path = root / relpath
        self.model_path = Path(model_path)
        if backend == "openvino":
            self._backend: _OrtBackend | _OpenVinoBackend = _OpenVinoBackend(self.model_path, threads, device)
        else:
            self._backend = _OrtBackend(self.model_path, threads, providers)
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=self.settings.pad_id, pad_token=self.settings.pad_token)
        self.model_id = self.settings.model_id
        self.sha256 = sha256
        self.dim = self.settings.dim

    @property
    def max_seq_length(self) -> int:
        return self.settings.max_seq_length

    def _prepare(self, text: str) -> str:
        text = text.strip()
        return text.lower() if self.settings.do_lower_case else text

    def feeds(self, batch: list[str] | list[tuple[str, str]]) -> dict[str, np.ndarray]:
        """Model inputs for texts (or query/document pairs), padded and truncated as sentence-transformers does."""
        prepared = [tuple(self._prepare(t) for t in item) if isinstance(item, tuple) else self._prepare(item)
                    for item in batch]
        encodings = self.tokenizer.encode_batch(prepared)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self._backend.input_names}

    def _forward(self, batch: list[str] | list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        feeds = self.feeds(batch)
        return self._backend.run(feeds, self.settings.output_name), feeds["attention_mask"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 sentence embeddings, L2-normalised when the model's modules.json says so."""
        if self.settings.task != "embedding":
            raise EncoderRuntimeError(f"{self.model_id}: a {self.settings.task} model cannot embed; use rerank()")
        chunks = []
        for start in range(0, len(texts), BATCH_SIZE):
            hidden, mask = self._forward(texts[start:start + BATCH_SIZE])
            chunks.append(pool(hidden.astype(np.float32), mask, self.settings.pooling_modes))
        vectors = np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)
        return l2_normalize(vectors) if self.settings.normalize else vectors

    def rerank(self, query: str, docs: list[str]) -> np.ndarray:
        """Relevance of each doc to the query in (0, 1): sigmoid of the cross-encoder logit, as CrossEncoder.predict."""
        if self.settings.task != "reranker":
            raise EncoderRuntimeError(f"{self.model_id}: an {self.settings.task} model cannot rerank; use embed()")
        scores = []
        for start in range(0, len(docs), BATCH_SIZE):
            logits, _ = self._forward([(query, doc) for doc in docs[start:start + BATCH_SIZE]])
            scores.append(logits[:, 0].astype(np.float32))
        logits = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def _choose_backend(profile: Any, settings: EncoderSettings) -> tuple[str, str, list[str] | None]:
    """(backend, OpenVINO device, ORT providers) as the profile asks; plain CPU onnxruntime without a profile."""
    if profile is None:
        return "onnxruntime", "CPU", None
    accelerators = profile.accelerators
    if profile.encoder.openvino and settings.openvino_file and accelerators.openvino_device:
        return "openvino", accelerators.openvino_device, None
    return "onnxruntime", "CPU", list(accelerators.onnx_providers)


def load_encoder(bundle_dir: str | Path, profile_or_none: Any = None, role: str = "embedding",
                 threads: int = 1) -> Encoder:
    """Verify the role's files against manifest.json, then load the model the profile's backend needs."""
    root = Path(bundle_dir)
    if role not in ROLES:
        raise EncoderRuntimeError(f"role must be one of {', '.join(ROLES)}, found {role!r}")
    manifest = _read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise EncoderRuntimeError(f"{root / 'manifest.json'}: field 'artifacts' must be an object")
    if profile_or_none is not None and manifest.get("profile") != profile_or_none.name:
        raise EncoderRuntimeError(
            f"{root / 'manifest.json'}: bundle was built for profile {manifest.get('profile')!r}, "
            f"this box runs {profile_or_none.name!r}"
        )
    prefix = f"encoder/{role}/"
    entries = {path: entry for path, entry in manifest["artifacts"].items() if path.startswith(prefix)}
    if f"{prefix}encoder.json" not in entries:
        raise EncoderRuntimeError(
            f"{root / 'manifest.json'}: no {role} encoder in this bundle (no {prefix}encoder.json)"
        )
    problems = [problem for path, entry in sorted(entries.items()) for problem in verify_artifact(root, path, entry)]
    if problems:
        raise EncoderRuntimeError("refusing to load a corrupted encoder: " + "; ".join(problems))
    role_dir = root / prefix
    settings = read_settings(role_dir)
    backend, device, providers = _choose_backend(profile_or_none, settings)
    model_rel = settings.openvino_file if backend == "openvino" else settings.onnx_file
    required = [model_rel, "tokenizer.json", "sentence_bert_config.json"]
    if backend == "openvino":
        required.append(str(Path(model_rel).with_suffix(".bin")))
    if settings.task == "embedding":
        required += ["modules.json", "1_Pooling/config.json"]
    unlisted = [f"{prefix}{name}" for name in required if f"{prefix}{name}" not in entries]
    if unlisted:
        raise EncoderRuntimeError(f"{root / 'manifest.json'}: {', '.join(unlisted)} not listed; cannot trust them")
    return Encoder(role_dir, backend=backend, threads=threads, providers=providers, device=device,
                   sha256=entries[f"{prefix}{model_rel}"]["sha256"])
