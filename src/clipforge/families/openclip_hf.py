"""open_clip text encoders whose tokenizer is a Hugging Face one (``text_cfg.hf_tokenizer_name``): SigLIP and
SigLIP 2 in open_clip format (T5/Gemma tokenizers), the multilingual towers (XLM-R, mT5, NLLB, XLM-V), CLIPA
(BERT), RoBERTa.

open_clip's ``HFTokenizer`` cleans each text (``tokenizer_kwargs.clean``: "whitespace" by default, "lower",
"canonicalize"), runs the HF tokenizer padded to the context length and truncated, then writes 0 over ``[SEP]``
where ``strip_sep_token`` is set. The manifest records the cleaning and the stripping (``text.clean``,
``text.strip_sep_token``) beside the HF tokenizer's own ``tokenizer.json``, so the runtime does the same without
torch. A hub-layout folder without tokenizer files takes the tokenizer ``hf_tokenizer_name`` names (a local
folder, or a hub id downloaded once and cached by huggingface_hub); the export copies it into its folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from clipforge.errors import UnsupportedModelError
from clipforge.families.base import tokenizer_json_text_spec
from clipforge.hub import OPENCLIP_CONFIG, tokenizer_folder
from clipforge.specs import TextSpec

CLEAN_NAMES = {"_clean_whitespace": "whitespace", "_clean_lower": "lower", "_clean_canonicalize": "canonicalize"}
# files AutoTokenizer can build a tokenizer from (a folder with none of them holds no tokenizer)
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "vocab.txt", "sentencepiece.bpe.model")


def text_cfg(folder: Path) -> dict:
    return json.loads((folder / OPENCLIP_CONFIG).read_text()).get("model_cfg", {}).get("text_cfg", {})


def folder_tokenizer(open_clip, folder: Path):
    """open_clip's tokenizer for a hub-layout ``folder``: ``get_tokenizer("local-dir:…")`` (which reads HF
    tokenizer files from the folder itself), or, where the folder has none, an ``HFTokenizer`` on the tokenizer
    ``hf_tokenizer_name`` names, built with the folder's context length and tokenizer arguments as open_clip
    builds it."""
    cfg = text_cfg(folder)
    name = cfg.get("hf_tokenizer_name")
    if not name or any((folder / m).is_file() for m in TOKENIZER_MARKERS):
        return open_clip.get_tokenizer(f"local-dir:{folder}")
    return open_clip.tokenizer.HFTokenizer(
        str(tokenizer_folder(str(name))),
        context_length=int(cfg.get("context_length", 77)),
        tokenizer_mode=cfg.get("tokenizer_mode"),
        **cfg.get("tokenizer_kwargs", {}),
    )


def is_hf_tokenizer(tokenizer) -> bool:
    return type(tokenizer).__name__ == "HFTokenizer"


class OpenClipHFTokenizer:
    """open_clip's ``HFTokenizer`` called like a HF tokenizer (``export.cases.tokenize``); every other attribute
    (ids of special tokens, ``backend_tokenizer``, ``save_pretrained``…) is the wrapped HF tokenizer's."""

    def __init__(self, tokenizer):
        mode = getattr(tokenizer, "tokenizer_mode", "")
        if mode:
            raise UnsupportedModelError(
                f"not supported yet: open_clip's HFTokenizer in tokenizer_mode {mode!r} "
                "(only its standard mode is reproduced without torch)"
            )
        self.tok, self.hf = tokenizer, tokenizer.tokenizer
        self.context_length = int(tokenizer.context_length)
        self.clean = CLEAN_NAMES[tokenizer.clean_fn.__name__]
        self.strip_sep_token = bool(tokenizer.strip_sep_token)

    def __getattr__(self, name):
        if name in ("tok", "hf"):  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.hf, name)

    def __call__(self, texts, truncation=True, return_tensors="np", padding=True, max_length=None, **_):
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = max_length or self.context_length  # open_clip always pads to the context length
        ids = self.tok(texts, context_length=limit).numpy().astype(np.int64)
        cleaned = [self.tok.clean_fn(t) for t in texts]
        enc = self.hf(cleaned, max_length=limit, padding="max_length", truncation=True, return_tensors="np")
        return {"input_ids": ids, "attention_mask": np.asarray(enc["attention_mask"]).astype(np.int64)}

    def text_spec(self) -> TextSpec:
        """The manifest's ``TextSpec``: the HF tokenizer's own (its ``tokenizer.json`` as is, or SigLIP's slow
        SentencePiece path), padded to the context length, after open_clip's cleaning."""
        lowercase = self.clean in ("lower", "canonicalize")
        if getattr(self.hf, "backend_tokenizer", None) is not None:
            spec = tokenizer_json_text_spec(
                self.hf, context_length=self.context_length, padding="max_length", uses_attention_mask=False
            )
            spec = replace(spec, lowercase=spec.lowercase or lowercase)
        else:
            spec = TextSpec(
                context_length=self.context_length,
                padding="max_length",
                lowercase=lowercase or bool(getattr(self.hf, "do_lower_case", False)),
                pad_id=int(self.hf.pad_token_id),
                eos_id=int(self.hf.eos_token_id),
                uses_attention_mask=False,
                kind="sentencepiece",
            )
        if self.strip_sep_token and self.hf.sep_token_id is None:
            raise UnsupportedModelError(f"strip_sep_token is set but {type(self.hf).__name__} has no [SEP] token")
        specials = dict(spec.special_tokens)
        if self.strip_sep_token:
            specials["sep"] = int(self.hf.sep_token_id)
        return replace(spec, clean=self.clean, strip_sep_token=self.strip_sep_token, special_tokens=specials)
