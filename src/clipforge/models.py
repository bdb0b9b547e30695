"""The one way in for models: any MODEL (hub id, checkpoint folder, open_clip source or weights file, exported or
built folder) becomes an exported folder with ``model_folder`` and a loaded model with ``open_model``. Every
command and API (``ZeroShotModel.from_pretrained``, the CLI, eval, perf, pipeline, index, serve) calls one of
the two.

Layers: this module sits above ``runtime`` (which loads folders and never imports export, builder or this
module) and above ``export``/``builder`` (which make folders). ``ZeroShotModel`` here is the public class
(``clipforge.ZeroShotModel``): a subclass of the runtime's class that adds ``from_pretrained`` (which needs the
export and build code); ``from_onnx`` is inherited, so both spellings return this class, and an instance is
also an ``isinstance`` of ``clipforge.runtime.model.ZeroShotModel``, which code inside the runtime layer uses.

- an exported or built folder (has ``manifest.json``) is returned as it is; options it does not satisfy are
  errors;
- a checkpoint is exported once into the cache (``clipforge.export.cache``; ``clipforge.folders`` keys it);
- options beyond a plain export (``quantize``, ``ep``, ...) are built (``build_composite``) into the cache.
"""

from __future__ import annotations

from pathlib import Path

from clipforge.errors import InputError
from clipforge.folders import cache_folder, check_folder_matches, is_exported_folder
from clipforge.options import MODEL_OPTION_KEYS, check_model_options, needs_build
from clipforge.runtime.loading import LoadOptions
from clipforge.runtime.model import ZeroShotModel as RuntimeModel
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE


def model_folder(
    source: str | Path,
    *,
    revision: str | None = None,
    options: dict | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> Path:
    """The folder of an exported/built ``source``: itself when it is one, else a cached export (or build)."""
    options = check_model_options(dict(options or {}))
    if is_exported_folder(source):
        check_folder_matches(Path(source), options)
        return Path(source)
    # Imported here, the one documented exception in this module: an exported folder loads without importing
    # the export and build code (~40 modules; test_resolve checks ``from_pretrained`` of a folder imports none).
    from clipforge import builder
    from clipforge.export.cache import cached_export

    if not needs_build(options):
        return cached_export(
            source, revision=revision, options=options, cache_dir=cache_dir, show_progress=show_progress
        )
    folder = cache_folder(source, revision, options, cache_dir)
    if not (folder / "manifest.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        builder.build_composite(source, folder, revision=revision, force=True, show_progress=show_progress, **options)
    return folder


def open_model(
    source: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    sub_model_kwargs: dict | None = None,
    show_progress: bool = True,
    **kwargs,
) -> ZeroShotModel:
    """``source`` loaded: its folder from ``model_folder`` (export and build keywords, ``sub_model_kwargs``'
    static shapes), run with the ``LoadOptions`` keywords (device, threads, backend, precision, lazy, ...)."""
    load, options = LoadOptions.split(kwargs, "from_pretrained", MODEL_OPTION_KEYS)
    # a NaFlex budget is the load's (any budget runs on the same graphs): not a reason to export or build again
    options.pop("max_patches", None)
    options = {**options, **shape_options(sub_model_kwargs)}
    folder = model_folder(source, revision=revision, options=options, cache_dir=cache_dir, show_progress=show_progress)
    return ZeroShotModel.from_onnx(folder, **{k: getattr(load, k) for k in LoadOptions.names()})


class ZeroShotModel(RuntimeModel):
    """The runtime's ``ZeroShotModel`` plus ``from_pretrained``: any MODEL, exported or built once if needed."""

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        sub_model_kwargs: dict | None = None,
        show_progress: bool = True,
        **kwargs,
    ) -> ZeroShotModel:
        """A hub id, checkpoint folder or exported/built folder; checkpoints are exported (or, with build
        options such as ``quantize=``, built) once into the cache by ``model_folder``.
        ``sub_model_kwargs={"image-encoder": {"shape_config": {"height": H, "width": W}}, "text-encoder":
        {"shape_config": {"sequence_length": L}}}`` exports static shapes per encoder."""
        return open_model(
            model,
            revision=revision,
            cache_dir=cache_dir,
            sub_model_kwargs=sub_model_kwargs,
            show_progress=show_progress,
            **kwargs,
        )


SHAPE_KEYS = {IMAGE_ROLE: ("height", "width", "batch_size"), TEXT_ROLE: ("sequence_length", "batch_size")}


def shape_options(sub_model_kwargs: dict | None) -> dict:
    """``{encoder: {"shape_config": {...}}}`` (the seeds' form) -> static export options: image height/width
    (square) -> ``image_size``, text ``sequence_length``, ``batch_size`` (default 1)."""
    if not sub_model_kwargs:
        return {}
    shapes: dict = {}
    for encoder, kwargs in sub_model_kwargs.items():
        if encoder not in SHAPE_KEYS:
            raise InputError(f"sub_model_kwargs: unknown sub-model {encoder!r}; valid: {', '.join(ROLES)}")
        unknown = sorted(set(kwargs) - {"shape_config"})
        if unknown:
            raise InputError(f"sub_model_kwargs[{encoder!r}]: unknown key(s) {unknown}; valid: shape_config")
        config = dict(kwargs.get("shape_config") or {})
        bad = sorted(set(config) - set(SHAPE_KEYS[encoder]))
        if bad:
            raise InputError(
                f"sub_model_kwargs[{encoder!r}]['shape_config']: unknown key(s) {bad}; "
                f"valid for {encoder}: {', '.join(SHAPE_KEYS[encoder])}"
            )
        _merge_shape(shapes, encoder, config)
    return {"static": True, "batch_size": shapes.pop("batch_size", 1), **shapes}


def _merge_shape(shapes: dict, encoder: str, config: dict) -> None:
    if encoder == IMAGE_ROLE and ("height" in config or "width" in config):
        height, width = config.get("height", config.get("width")), config.get("width", config.get("height"))
        if height != width:
            raise InputError(
                f"shape_config height {height} != width {width}: only square image sizes export "
                "(position embeddings are interpolated to a square grid)"
            )
        shapes["image_size"] = height
    if "sequence_length" in config:
        shapes["sequence_length"] = config["sequence_length"]
    if "batch_size" in config:
        if shapes.get("batch_size", config["batch_size"]) != config["batch_size"]:
            raise InputError("shape_config batch_size differs between the encoders; give both the same")
        shapes["batch_size"] = config["batch_size"]
