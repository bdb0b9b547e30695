"""Export a CLIP-family checkpoint to a validated image-encoder + text-encoder ONNX folder."""

from clipforge.export.exporter import ExportOptions, ExportResult, export_model

__all__ = ["ExportOptions", "ExportResult", "export_model"]
