"""Model outputs shaped like Hugging Face's CLIP/SigLIP outputs (attribute, key and index access)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class ZeroShotOutput:
    """``logits_per_image`` [images, texts], ``logits_per_text`` [texts, images], L2-normalised embeddings."""

    logits_per_image: object = None
    logits_per_text: object = None
    text_embeds: object = None
    image_embeds: object = None

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]

    def keys(self):
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, k) for k in self.keys())

    def as_torch(self) -> ZeroShotOutput:
        """The same output with torch tensors (for callers that passed torch tensors, e.g. HF pipelines)."""
        torch = sys.modules["torch"]
        values = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in self.keys()}
        return ZeroShotOutput(**values)


def to_numpy(value, dtype=None) -> np.ndarray | None:
    """numpy view of a numpy array, a list or a torch tensor (torch is never imported here)."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    return array.astype(dtype, copy=False) if dtype else array


def is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")
