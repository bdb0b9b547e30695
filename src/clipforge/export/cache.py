"""The export cache: a checkpoint exported once per source and export options. ``clipforge.models`` (the one way
in for models) and the builder (its fp32 stage) both use it, so it sits in the export layer, below both."""

from __future__ import annotations

from pathlib import Path

from clipforge.export.exporter import export_model
from clipforge.folders import cache_folder, check_folder_matches, is_exported_folder
from clipforge.options import ExportOptions


def cached_export(
    model: str | Path,
    *,
    revision: str | None = None,
    options: dict | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> Path:
    """An exported folder as it is, else ``model`` exported with the export ``options`` once into the cache."""
    options = dict(options or {})
    if is_exported_folder(model):
        check_folder_matches(Path(model), options)
        return Path(model)
    folder = cache_folder(model, revision, options, cache_dir)
    if not (folder / "manifest.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        export_model(
            model, folder, ExportOptions(**options), revision=revision, force=True, show_progress=show_progress
        )
    return folder
