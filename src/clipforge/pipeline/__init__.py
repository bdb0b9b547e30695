"""Single-file graphs that run with onnxruntime (+ onnxruntime-extensions) alone: pipelines with image
pre-processing and the tokenizer inside the graph, and the fixed-label classifier."""

from clipforge.pipeline.config import PipelineConfig, list_presets, list_templates
from clipforge.pipeline.exporter import PipelineResult, export_pipeline
from clipforge.pipeline.runner import PipelineModel, check_image_bytes

__all__ = ["PipelineConfig", "PipelineModel", "PipelineResult", "check_image_bytes", "export_pipeline",
           "list_presets", "list_templates"]
