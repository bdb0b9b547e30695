"""Make ``import torchvision`` work beside a CPU torch when the installed torchvision is a CUDA build.

PyPI's ``torchvision==0.28.0`` (the release for torch 2.13.0) is a CUDA build: its C extension needs
``libtorch_cuda.so``, so next to the CPU torch the import fails with "operator torchvision::nms does not exist",
and so does every ``transformers`` import that pulls torchvision in (``CLIPModel``, the image processors). open_clip
and transformers only need torchvision's pure-Python transforms, which work once the two operator schemas the
package registers fakes for (``nms``, ``qnms``) exist. ``ensure_torchvision`` defines them, only when the plain
import fails with exactly that error. A CPU torchvision from PyTorch's CPU index imports directly and is left alone.

``install_import_guard`` (run by ``import clipforge``) makes that happen by itself: a meta-path finder that
imports nothing until the first import of transformers, open_clip or torchvision, then removes itself and runs
``ensure_torchvision`` once, so every entry point (the CLI's demo training, evaluation baselines, benchmarks)
gets the workaround without remembering to call it. It works in any import order: when transformers came first
(``onnxruntime_extensions`` imports it) the guard still catches torchvision's own import and loads it through a
loader that repairs the failure; when torchvision's import already failed half-way, it is repaired at once.
``ensure_torchvision`` is a no-op when torchvision is absent, already imported, or imports on its own.
"""

from __future__ import annotations

import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the torch.library.Library holding the schemas; kept alive for the process
_state: str | None = None  # "absent" | "plain" | "patched"
_TRIGGERS = ("transformers", "open_clip", "torchvision")


class _ImportGuard:
    """A meta-path finder (the protocol needs only ``find_spec``; importlib.abc would cost ~20 ms at start-up):
    runs ``ensure_torchvision`` before the first import of transformers or open_clip, and finds torchvision
    itself with a loader that repairs its import (no nested import of the name being imported)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            remove_import_guard()
            return _repairing_spec(name, path, target)
        if name in _TRIGGERS:
            remove_import_guard()
            ensure_torchvision()
        return None


class _RepairingLoader:
    """Wraps torchvision's own loader: runs the package; on the missing-operator error it forgets the
    half-imported submodules, defines the schemas and runs it again."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        global _state
        module.__loader__ = module.__spec__.loader = self.loader
        try:
            self.loader.exec_module(module)
            _state = "plain"
        except RuntimeError as exc:
            if "torchvision::nms" not in str(exc):
                raise
            _forget_partial_import(keep=module.__name__)
            _define_schemas()
            self.loader.exec_module(module)
            _state = "patched"


_GUARD = _ImportGuard()


def _repairing_spec(name, path, target):
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(name, path, target)
    if _state is not None or spec is None or spec.loader is None:
        return None  # settled or not found here: the other finders go on as usual
    spec.loader = _RepairingLoader(spec.loader)
    return spec


def install_import_guard() -> None:
    """Idempotent. Installs the guard while torchvision is not imported (also when transformers already is);
    a torchvision import that already failed half-way is repaired now."""
    if _state is not None or _GUARD in sys.meta_path or "torchvision" in sys.modules:
        return
    if any(m.startswith("torchvision.") for m in sys.modules):
        ensure_torchvision()
        return
    sys.meta_path.insert(0, _GUARD)


def remove_import_guard() -> None:
    if _GUARD in sys.meta_path:
        sys.meta_path.remove(_GUARD)


def ensure_torchvision() -> str:
    """Import torchvision if it is installed; returns "absent", "plain" (imported as is) or "patched"."""
    global _state
    if _state is not None:
        return _state
    remove_import_guard()
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        _state = "absent"
        return _state
    if "torchvision" not in sys.modules:
        _forget_partial_import()  # submodules left by an import that failed before clipforge was imported
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


def _forget_partial_import(keep: str | None = None) -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        if name != keep:
            del sys.modules[name]


def _define_schemas() -> None:
    global _library
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
