"""Tokenization with the `tokenizers` library only, reproducing the HF tokenizers' ids.

CLIP: byte-level BPE with ``<|startoftext|> … <|endoftext|>``, truncated to the context length (the last kept
token is EOS), padded to the longest text of the batch. SigLIP: lower-case and strip punctuation (HF's
``SiglipTokenizer.canonicalize_text``), SentencePiece, ``</s>`` appended, always padded to the context length.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from clipforge.errors import InputError
from clipforge.specs import TextSpec

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SPACES = re.compile(r"\s+")


@dataclass
class Encoded:
    input_ids: np.ndarray  # int64 [N, L]
    attention_mask: np.ndarray  # int64 [N, L]
    truncated: list[bool]


def canonicalize(text: str, lowercase: bool = True) -> str:
    """SigLIP's text canonicalisation: lower-case, drop ASCII punctuation, collapse whitespace."""
    text = text.lower() if lowercase else text
    return _SPACES.sub(" ", text.translate(_PUNCTUATION)).strip()


class TextTokenizer:
    """Texts -> (input_ids, attention_mask) following a ``TextSpec``."""

    def __init__(self, tokenizer, spec: TextSpec):
        self.tokenizer, self.spec = tokenizer, spec
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        specials = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        self._special = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None

    @classmethod
    def from_folder(cls, folder: str | Path, spec: TextSpec) -> "TextTokenizer":
        from tokenizers import Tokenizer

        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise InputError(f"{folder} has no tokenizer.json; re-export the model with clipforge")
        return cls(Tokenizer.from_file(str(path)), spec)

    def _prepare(self, text: str) -> str:
        if not self.spec.strip_punctuation:
            return text
        if self._special is None:
            return canonicalize(text, self.spec.lowercase)
        parts = self._special.split(text)  # special-token literals survive canonicalisation, as in HF
        return " ".join(p if i % 2 else canonicalize(p, self.spec.lowercase) for i, p in enumerate(parts)
                        if p.strip() or i % 2).strip()

    def ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Unpadded ids per text (with special tokens), truncated to the context length ending in EOS."""
        if isinstance(texts, str):
            raise InputError("pass a list of texts, not a single string")
        limit = self.spec.context_length
        encodings = self.tokenizer.encode_batch([self._prepare(str(t)) for t in texts], add_special_tokens=True)
        ids = [e.ids for e in encodings]
        truncated = [len(i) > limit for i in ids]
        return [i[: limit - 1] + [self.spec.eos_id] if cut else i for i, cut in zip(ids, truncated)], truncated

    def encode(self, texts: Sequence[str]) -> Encoded:
        ids, truncated = self.ids(texts)
        if self.spec.padding == "max_length":
            length = self.spec.context_length
        else:
            length = max((len(i) for i in ids), default=1)
        input_ids = np.full((len(ids), length), self.spec.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return Encoded(input_ids, mask, truncated)
