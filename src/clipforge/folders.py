"""Exported folders and where the model cache keeps them (``$CLIPFORGE_CACHE/models/<key>``), keyed by source,
revision, options (``text_attention_mask`` included: a masked and an unmasked SigLIP export of one checkpoint are
two entries), clipforge version and, for local folders, the files' sizes and mtimes. Light (no export or build
code), so ``clipforge.models`` answers "is this already a folder?" without importing them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import clipforge
from clipforge._io import cache_root
from clipforge.errors import InputError
from clipforge.specs import Manifest


def cache_key(model: str, revision: str | None, options: dict) -> str:
    """Key by source, revision, options, clipforge version and, for local folders, the weights' stat."""
    parts = {"model": str(model), "revision": revision, "options": options, "version": clipforge.__version__}
    folder = Path(model)
    if folder.is_dir():
        parts["files"] = sorted(
            (p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir() if p.is_file()
        )
        parts["model"] = str(folder.resolve())
        model = folder.resolve().name
    elif folder.is_file():  # an open_clip weights file
        parts["files"] = [(folder.name, folder.stat().st_size, int(folder.stat().st_mtime))]
        parts["model"] = str(folder.resolve())
        model = folder.name
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    name = str(model).rstrip("/").replace("/", "--").replace("\\", "--")[-60:]
    return f"{name}-{digest}"


def is_exported_folder(model) -> bool:
    return isinstance(model, (str, Path)) and (Path(model) / "manifest.json").is_file()


def cache_folder(model, revision: str | None, options: dict, cache_dir: str | Path | None = None) -> Path:
    """Where the cache keeps ``model`` exported (or built) with ``options``."""
    return Path(cache_dir or cache_root()) / "models" / cache_key(str(model), revision, options)


def check_folder_matches(folder: Path, options: dict) -> None:
    """An exported folder is used as it is: options it does not satisfy are an error, not silently ignored."""
    if not options:
        return
    manifest = Manifest.load(folder)
    have = {
        "static": manifest.static,
        "image_size": manifest.image.output_size[0],
        "sequence_length": manifest.text.context_length if manifest.static else None,
        "batch_size": manifest.build.get("static_batch_size") if manifest.static else None,
        # only SigLIP has the two variants; CLIP's text graph always takes its mask
        "text_attention_mask": manifest.text.uses_attention_mask
        if manifest.family == "siglip"
        else options.get("text_attention_mask"),
        # SigLIP 2 exports lower-case texts unless exported with keep_case
        "keep_case": not manifest.text.lowercase_texts if manifest.text.kind == "tokenizers" else False,
    }
    wrong = {k: v for k, v in options.items() if k not in have or have[k] != v}
    if wrong:
        raise InputError(
            f"{folder} is already exported ({_describe(have)}), so {wrong} cannot apply; pass the "
            "checkpoint (hub id or folder) to export or build it with these options"
        )


def _describe(have: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in have.items() if v is not None)
