"""One way to get an exported (or built) folder from whatever the caller has. Sits above ``runtime`` (which never
imports it at module level) and below the commands: ``ZeroShotModel.from_pretrained``, ``export-pipeline``,
``export-classifier``, ``build`` and the index/serve commands all call ``resolve_export``.

- an exported or built folder (has ``manifest.json``) is returned as it is;
- a hub id or checkpoint folder is exported once into the cache (``$CLIPFORGE_CACHE/models/<key>``), keyed by
  source, revision, options (``text_attention_mask`` included: a masked and an unmasked SigLIP export of one
  checkpoint are two entries), clipforge version and, for local folders, the files' sizes and mtimes;
- options beyond a plain export (``quantize``, ``ep``, ...) go through ``build_composite`` instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clipforge._io import cache_root
from clipforge.errors import InputError
from clipforge.options import ExportOptions, check_model_options, needs_build
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE, Manifest


def cache_key(model: str, revision: str | None, options: dict) -> str:
    """Key by source, revision, options, clipforge version and, for local folders, the weights' stat."""
    from clipforge import __version__

    parts = {"model": str(model), "revision": revision, "options": options, "version": __version__}
    folder = Path(model)
    if folder.is_dir():
        parts["files"] = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir()
                                if p.is_file())
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


def resolve_export(model: str | Path, *, revision: str | None = None, options: dict | None = None,
                   cache_dir: str | Path | None = None, show_progress: bool = True) -> Path:
    """The folder of an exported/built ``model``: itself when it is one, else a cached export (or build)."""
    options = check_model_options(dict(options or {}))
    if is_exported_folder(model):
        check_folder_matches(Path(model), options)
        return Path(model)
    folder = Path(cache_dir or cache_root()) / "models" / cache_key(str(model), revision, options)
    if not (folder / "manifest.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        _make(model, folder, revision, options, show_progress)
    return folder


def _make(model, folder: Path, revision, options: dict, show_progress: bool) -> None:
    if needs_build(options):
        from clipforge.builder import build_composite

        build_composite(model, folder, revision=revision, force=True, show_progress=show_progress, **options)
        return
    from clipforge.export import export_model

    export_model(model, folder, ExportOptions(**options), revision=revision, force=True,
                 show_progress=show_progress)


def check_folder_matches(folder: Path, options: dict) -> None:
    """An exported folder is used as it is: options it does not satisfy are an error, not silently ignored."""
    if not options:
        return
    manifest = Manifest.load(folder)
    have = {"static": manifest.static, "image_size": manifest.image.output_size[0],
            "sequence_length": manifest.text.context_length if manifest.static else None,
            "batch_size": manifest.build.get("static_batch_size") if manifest.static else None,
            # only SigLIP has the two variants; CLIP's text graph always takes its mask
            "text_attention_mask": manifest.text.uses_attention_mask if manifest.family == "siglip"
            else options.get("text_attention_mask")}
    wrong = {k: v for k, v in options.items() if k not in have or have[k] != v}
    if wrong:
        raise InputError(f"{folder} is already exported ({_describe(have)}), so {wrong} cannot apply; pass the "
                         "checkpoint (hub id or folder) to export or build it with these options")


def _describe(have: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in have.items() if v is not None)


SHAPE_KEYS = {IMAGE_ROLE: ("height", "width", "batch_size"), TEXT_ROLE: ("sequence_length", "batch_size")}


def shape_options(sub_model_kwargs: dict | None) -> dict:
    """``{role: {"shape_config": {...}}}`` (the seeds' form) -> static export options: image height/width
    (square) -> ``image_size``, text ``sequence_length``, ``batch_size`` (default 1)."""
    if not sub_model_kwargs:
        return {}
    shapes: dict = {}
    for role, kwargs in sub_model_kwargs.items():
        if role not in SHAPE_KEYS:
            raise InputError(f"sub_model_kwargs: unknown sub-model {role!r}; valid: {', '.join(ROLES)}")
        unknown = sorted(set(kwargs) - {"shape_config"})
        if unknown:
            raise InputError(f"sub_model_kwargs[{role!r}]: unknown key(s) {unknown}; valid: shape_config")
        config = dict(kwargs.get("shape_config") or {})
        bad = sorted(set(config) - set(SHAPE_KEYS[role]))
        if bad:
            raise InputError(f"sub_model_kwargs[{role!r}]['shape_config']: unknown key(s) {bad}; "
                             f"valid for {role}: {', '.join(SHAPE_KEYS[role])}")
        _merge_shape(shapes, role, config)
    return {"static": True, "batch_size": shapes.pop("batch_size", 1), **shapes}


def _merge_shape(shapes: dict, role: str, config: dict) -> None:
    if role == IMAGE_ROLE and ("height" in config or "width" in config):
        height, width = config.get("height", config.get("width")), config.get("width", config.get("height"))
        if height != width:
            raise InputError(f"shape_config height {height} != width {width}: only square image sizes export "
                             "(position embeddings are interpolated to a square grid)")
        shapes["image_size"] = height
    if "sequence_length" in config:
        shapes["sequence_length"] = config["sequence_length"]
    if "batch_size" in config:
        if shapes.get("batch_size", config["batch_size"]) != config["batch_size"]:
            raise InputError("shape_config batch_size differs between the sub-models; give both the same")
        shapes["batch_size"] = config["batch_size"]
