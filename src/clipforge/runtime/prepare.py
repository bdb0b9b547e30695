"""Turn a hub id or checkpoint folder into an exported (or built) folder, for ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

EXPORT_KEYS = {"opset", "static", "batch_size", "sequence_length", "image_size", "atol"}


def prepare(model, folder: Path, revision: str | None, options: dict) -> Path:
    """Export ``model`` into ``folder`` (atomically). Options beyond plain export go to the build pipeline."""
    from clipforge.export import ExportOptions, export_model

    folder.parent.mkdir(parents=True, exist_ok=True)
    if set(options) - EXPORT_KEYS:
        from clipforge.builder import build_composite  # quantisation and other build stages

        return build_composite(model, folder, revision=revision, force=True, **options).path
    export_model(model, folder, ExportOptions(revision=revision, force=True, **options), show_progress=True)
    return folder
