"""Local stand-ins for the Hugging Face hub names open_clip configs carry (``text_cfg.hf_model_name``,
``text_cfg.hf_tokenizer_name``), so any open_clip architecture with a HF text tower or tokenizer builds offline.

A stand-in is a folder holding a ``config.json`` and a tokenizer trained locally on the test corpus:
- the config keeps the real model's dimensions (data below, from the published configs), except that
  encoder-decoder models (mT5, NLLB) get one decoder layer: open_clip keeps only their encoder;
- the tokenizer has the real one's layout and special-token ids (WordPiece for BERT, Unigram with ``<s> … </s>``
  for XLM-R/XLM-V/NLLB/RoBERTa, T5-style Unigram for mT5 and SigLIP's c4/mc4, Gemma-style BPE for SigLIP 2),
  not its vocabulary (a few hundred pieces, all below the real vocabulary size). RoBERTa's byte-level BPE and
  NLLB's language-code prefix are not reproduced: they are XLM-R-style Unigrams here.

``clipforge-tiny/…`` names are tiny configs for tests. Folders are built once under the fixture cache
(``$CLIPFORGE_FIXTURE_CACHE``, else ``~/.cache/clipforge/fixtures``) and shared between processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from clipforge.testing.shapes import fixture_root
from clipforge.testing.tokenizers import (
    save_gemma_tokenizer,
    save_t5_tokenizer,
    save_unigram_tokenizer,
    save_wordpiece_tokenizer,
)

STAND_IN_VERSION = 1
_ROBERTA = {
    "model_type": "xlm-roberta",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}
_MT5 = {
    "model_type": "mt5",
    "vocab_size": 250112,
    "d_kv": 64,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "num_decoder_layers": 1,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
_NLLB = {
    "model_type": "m2m_100",
    "vocab_size": 256206,
    "d_model": 1024,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "decoder_layers": 1,
    "decoder_ffn_dim": 4096,
    "max_position_embeddings": 1024,
    "scale_embedding": True,
    "activation_function": "relu",
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "decoder_start_token_id": 2,
}
_TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
# hf_model_name -> config.json (real dimensions)
MODEL_CONFIGS = {
    "xlm-roberta-base": {**_ROBERTA, "vocab_size": 250002},
    "xlm-roberta-large": {**_ROBERTA, **_LARGE, "vocab_size": 250002},
    "roberta-base": {**_ROBERTA, "model_type": "roberta", "vocab_size": 50265},
    "google/mt5-base": {**_MT5, "d_model": 768, "d_ff": 2048, "num_layers": 12, "num_heads": 12},
    "google/mt5-xl": {**_MT5, "d_model": 2048, "d_ff": 5120, "num_layers": 24, "num_heads": 32},
    "facebook/nllb-200-distilled-600M": {**_NLLB, "encoder_layers": 12, "encoder_ffn_dim": 4096},
    "facebook/nllb-200-distilled-1.3B": {**_NLLB, "encoder_layers": 24, "encoder_ffn_dim": 8192},
    "clipforge-tiny/xlm-roberta": {**_ROBERTA, **_TINY, "vocab_size": 512, "max_position_embeddings": 80},
    "clipforge-tiny/roberta": {**_ROBERTA, **_TINY, "model_type": "roberta", "vocab_size": 512},
    "clipforge-tiny/mt5": {**_MT5, "d_model": 64, "d_ff": 128, "num_layers": 2, "num_heads": 2, "vocab_size": 512},
    "clipforge-tiny/nllb": {
        **_NLLB,
        "vocab_size": 512,
        "d_model": 64,
        "encoder_layers": 2,
        "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "max_position_embeddings": 128,
    },
}
# tokenizer layout per name (hf_tokenizer_name, or hf_model_name when the tokenizer is the model's)
_TOKENIZER_RULES = [
    (r"bert-base-uncased", "wordpiece"),
    (r"SigLIP2", "gemma"),
    (r"SigLIP|mt5", "t5"),
    (r"roberta|xlm-v|nllb", "unigram"),
]
_SAVERS = {
    "wordpiece": save_wordpiece_tokenizer,
    "gemma": save_gemma_tokenizer,
    "t5": save_t5_tokenizer,
    "unigram": save_unigram_tokenizer,
}


def tokenizer_kind(name: str) -> str:
    for pattern, kind in _TOKENIZER_RULES:
        if re.search(pattern, name, re.IGNORECASE):
            return kind
    raise KeyError(f"no stand-in tokenizer for {name!r}; known patterns: {[p for p, _ in _TOKENIZER_RULES]}")


def _root() -> Path:
    return fixture_root() / f"hf-stand-ins-v{STAND_IN_VERSION}"


def _publish(build, folder: Path) -> Path:
    """Build into a temporary sibling, then rename; a folder another process published first wins."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        build(tmp)
        os.rename(tmp, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]", "--", name)


def tokenizer_stand_in(name: str) -> Path:
    """A folder with a tokenizer laid out like the hub's ``name`` (trained locally)."""
    kind = tokenizer_kind(name)
    return _publish(lambda tmp: _SAVERS[kind](tmp), _root() / "tokenizers" / kind)


def model_stand_in(name: str) -> Path:
    """A folder with ``name``'s ``config.json`` (real dimensions) and a stand-in tokenizer."""
    if name not in MODEL_CONFIGS:
        raise KeyError(f"no stand-in config for {name!r}; known: {', '.join(MODEL_CONFIGS)}")

    def build(tmp: Path) -> None:
        shutil.copytree(tokenizer_stand_in(name), tmp, dirs_exist_ok=True)
        (tmp / "config.json").write_text(json.dumps(MODEL_CONFIGS[name], indent=2))

    return _publish(build, _root() / "models" / _safe(name))


def offline_config(config: dict) -> dict:
    """``config`` (an open_clip model config) with the hub names of its text tower replaced by local stand-in
    folders; names that already are folders are kept."""
    config = json.loads(json.dumps(config))
    text = config.get("text_cfg", {})
    model_name = text.get("hf_model_name")
    if model_name and not Path(model_name).is_dir():
        text["hf_model_name"] = str(model_stand_in(model_name))
    tokenizer_name = text.get("hf_tokenizer_name")
    if tokenizer_name and not Path(tokenizer_name).is_dir():
        text["hf_tokenizer_name"] = (
            text["hf_model_name"] if tokenizer_name == model_name else str(tokenizer_stand_in(tokenizer_name))
        )
    return config
