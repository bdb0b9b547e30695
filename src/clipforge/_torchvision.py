"""Make ``import torchvision`` work beside a CPU torch when the installed torchvision is a CUDA build.

PyPI's ``torchvision==0.28.0`` (the release for torch 2.13.0) is a CUDA build: its C extension needs
``libtorch_cuda.so``, so next to the CPU torch the import fails with "operator torchvision::nms does not exist",
and so does every ``transformers`` import that pulls torchvision in (``CLIPModel``, the image processors). open_clip
and transformers only need torchvision's pure-Python transforms, which work once the two operator schemas the
package registers fakes for (``nms``, ``qnms``) exist. ``ensure_torchvision`` defines them, only when the plain
import fails with exactly that error. A CPU torchvision from PyTorch's CPU index imports directly and is left alone.

Call it before importing transformers or open_clip (``export.checkpoint`` and the open_clip family do); it is a
no-op when torchvision is absent, already imported, or imports on its own.
"""

from __future__ import annotations

import importlib.util
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the torch.library.Library holding the schemas; kept alive for the process
_state: str | None = None  # "absent" | "plain" | "patched"


def ensure_torchvision() -> str:
    """Import torchvision if it is installed; returns "absent", "plain" (imported as is) or "patched"."""
    global _state
    if _state is not None:
        return _state
    if importlib.util.find_spec("torchvision") is None:
        _state = "absent"
        return _state
    try:
        import torchvision  # noqa: F401
        _state = "plain"
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        _forget_partial_import()
        _define_schemas()
        import torchvision  # noqa: F401,F811
        _state = "patched"
    return _state


def _forget_partial_import() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def _define_schemas() -> None:
    global _library
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
