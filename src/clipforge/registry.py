"""Model-family registry: ``@register_family`` adds a family; lookups that fail list the valid names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from clipforge.errors import InputError, UnsupportedModelError

if TYPE_CHECKING:
    from clipforge.families.base import Family

_FAMILIES: dict[str, "Family"] = {}


def register_family(cls):
    """Class decorator: instantiate and register a family under its ``name``."""
    family = cls()
    _FAMILIES[family.name] = family
    return cls


def _load_builtin() -> None:
    import clipforge.families  # noqa: F401  (registers the built-in families)


def list_families() -> list[str]:
    _load_builtin()
    return sorted(_FAMILIES)


def get_family(name: str) -> "Family":
    _load_builtin()
    if name not in _FAMILIES:
        raise UnsupportedModelError(f"unknown family {name!r}; supported: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_for_model_type(model_type: str) -> "Family":
    _load_builtin()
    for family in _FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported families: {', '.join(list_families())}"
    )


def family_for_checkpoint(folder: str | Path) -> "Family":
    """Find the family from a checkpoint folder's ``config.json``; open_clip folders (``open_clip_config.json``)
    and weights files are the ``openclip`` family."""
    from clipforge.hub import is_openclip_folder, is_weights_file, not_a_model

    if is_openclip_folder(Path(folder)) or is_weights_file(Path(folder)):
        return get_family("openclip")
    config = Path(folder) / "config.json"
    if (Path(folder) / "manifest.json").is_file() and not config.is_file():
        raise InputError(f"{folder} is an exported folder (manifest.json), already ONNX: use it as it is (classify, "
                         "embed, eval, perf, build, index, serve); to export again, pass its checkpoint (config.json)")
    if not config.is_file():
        raise not_a_model(folder)
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except ValueError as exc:
        raise InputError(f"{config} is not valid JSON ({exc})") from exc
    return family_for_model_type(model_type)


def list_models() -> list[dict]:
    """Well-known checkpoints of every family, as rows (name, family, params, embed_dim, image_size)."""
    _load_builtin()
    return [dict(row, family=f.name) for f in _FAMILIES.values() for row in f.checkpoints]
