"""Single-file graphs that run with onnxruntime (+ onnxruntime-extensions) alone: pipelines with image
pre-processing and the tokenizer inside the graph, and the fixed-label classifier.

Imported lazily: ``from clipforge.pipeline import PipelineModel`` needs neither onnx nor torch (the runner is
what ``pip install clipforge[extensions]`` supports); exporting needs ``clipforge[pipeline]``."""

from __future__ import annotations

import importlib

_LAZY = {
    "PipelineConfig": "clipforge.pipeline.presets",
    "list_presets": "clipforge.pipeline.presets",
    "PipelineResult": "clipforge.pipeline.export_graphs",
    "export_pipeline": "clipforge.pipeline.export_graphs",
    "PipelineModel": "clipforge.pipeline.runner",
    "check_image_bytes": "clipforge.pipeline.runner",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clipforge.pipeline' has no attribute {name!r}")
