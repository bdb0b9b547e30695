"""Tokenizer and image-processor files beside the encoders, so an exported folder is self-contained."""

from __future__ import annotations

from pathlib import Path


def save_support_files(ckpt, folder: Path) -> None:
    from clipforge.export.tokenizer_files import save_runtime_tokenizer

    save_runtime_tokenizer(ckpt.tokenizer, folder)
    ckpt.processor.save_pretrained(str(folder))
