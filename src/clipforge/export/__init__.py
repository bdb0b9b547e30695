"""Export a CLIP-family checkpoint to a validated image-encoder + text-encoder ONNX folder."""

from clipforge.export.exporter import ExportResult, export_model
from clipforge.options import ExportOptions

__all__ = ["ExportOptions", "ExportResult", "export_model"]
