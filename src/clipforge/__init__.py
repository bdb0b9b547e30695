"""clipforge: fast, validated ONNX for CLIP-family dual encoders.

The public API is imported lazily so ``import clipforge`` stays cheap and torch-free.
"""

from __future__ import annotations

import importlib

from clipforge._torchvision import install_import_guard

__version__ = "0.1.0"

# the torchvision workaround runs at the first transformers/open_clip import, and only where it is needed
install_import_guard()

_LAZY = {
    "ClipforgeError": "clipforge.errors",
    "Manifest": "clipforge.specs",
    "get_family": "clipforge.registry",
    "list_families": "clipforge.registry",
    "list_models": "clipforge.registry",
    "ExportOptions": "clipforge.options",
    "model_folder": "clipforge.models",
    "open_model": "clipforge.models",
    "export_model": "clipforge.export",
    "ZeroShotModel": "clipforge.models",
    "Index": "clipforge.index",
    "SearchFilter": "clipforge.index",
}
# Seed-compatible alias for users coming from composite-model tooling.
_ALIASES = {"ModelForZeroShotImageClassification": "ZeroShotModel"}

__all__ = ["__version__", *_LAZY, *_ALIASES]


def __getattr__(name: str):
    target = _ALIASES.get(name, name)
    if target in _LAZY:
        return getattr(importlib.import_module(_LAZY[target]), target)
    raise AttributeError(f"module 'clipforge' has no attribute {name!r}")
