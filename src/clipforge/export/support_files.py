"""Tokenizer and image-processor files beside the encoders, so an exported folder is self-contained."""

from __future__ import annotations

from pathlib import Path

from clipforge.export.tokenizer_files import save_runtime_tokenizer


def save_support_files(ckpt, folder: Path) -> None:

    save_runtime_tokenizer(ckpt.tokenizer, folder)
    ckpt.processor.save_pretrained(str(folder))
