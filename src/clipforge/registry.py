"""Model-family registry: the built-in families (``clipforge.families.BUILTIN``) and any ``@register_family``
adds; lookups that fail list the valid names. Sits above ``families`` (which never import it)."""

from __future__ import annotations

import json
from pathlib import Path

from clipforge.errors import InputError, UnsupportedModelError
from clipforge.families import BUILTIN
from clipforge.families.base import Family
from clipforge.families.known import FORMATS
from clipforge.hub import is_openclip_folder, is_weights_file, not_a_model

_FAMILIES: dict[str, Family] = {}


def register_family(cls):
    """Class decorator: instantiate and register a family under its ``name``."""
    family = cls()
    _FAMILIES[family.name] = family
    return cls


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise UnsupportedModelError(f"unknown family {name!r}; supported: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_for_model_type(model_type: str) -> Family:
    for family in _FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported families: {', '.join(list_families())}"
    )


def family_for_checkpoint(folder: str | Path) -> Family:
    """Find the family from a checkpoint folder's ``config.json``; open_clip folders (``open_clip_config.json``)
    and weights files are the ``openclip`` family."""

    if is_openclip_folder(Path(folder)) or is_weights_file(Path(folder)):
        return get_family("openclip")
    config = Path(folder) / "config.json"
    if (Path(folder) / "manifest.json").is_file() and not config.is_file():
        raise InputError(
            f"{folder} is an exported folder (manifest.json), already ONNX: use it as it is (classify, "
            "embed, eval, perf, build, index, serve); to export again, pass its checkpoint (config.json)"
        )
    if not config.is_file():
        raise not_a_model(folder)
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except ValueError as exc:
        raise InputError(f"{config} is not valid JSON ({exc})") from exc
    return family_for_model_type(model_type)


def list_models() -> list[dict]:
    """Well-known checkpoints of every family, as rows (name, family, params_m, embed_dim, image_size, languages:
    "en" or "multilingual", format: "transformers" or "open_clip")."""
    return [
        {"languages": "en", **row, "family": f.name, "format": FORMATS.get(f.name, "transformers")}
        for f in _FAMILIES.values()
        for row in f.checkpoints
    ]


for _builtin in BUILTIN:
    register_family(_builtin)
