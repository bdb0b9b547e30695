"""Tiny checkpoints by family name. The builders live in ``testing`` and are keyed here by the family's name, so
the families (which export real checkpoints) never import test fixtures."""

from __future__ import annotations

from pathlib import Path

from clipforge.errors import InputError
from clipforge.testing.tiny import (
    save_clip_checkpoint,
    save_metaclip2_checkpoint,
    save_siglip2_checkpoint,
    save_siglip_checkpoint,
)
from clipforge.testing.tiny_openclip import save_openclip_checkpoint

BUILDERS = {
    "clip": save_clip_checkpoint,
    "siglip": save_siglip_checkpoint,
    "siglip2": save_siglip2_checkpoint,
    "openclip": save_openclip_checkpoint,
    "metaclip2": save_metaclip2_checkpoint,
}


def save_tiny_checkpoint(family: str, folder: str | Path, **overrides) -> Path:
    """A tiny random checkpoint of ``family`` in ``folder`` (the builder's keywords: shape, image_size, kind,
    layout, ...)."""
    if family not in BUILDERS:
        raise InputError(f"no tiny checkpoint for family {family!r}; known: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[family](Path(folder), **overrides)
