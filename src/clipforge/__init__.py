"""clipforge: fast, validated ONNX for CLIP-family dual encoders."""

from clipforge.errors import ClipforgeError
from clipforge.registry import get_family, list_families, list_models
from clipforge.specs import Manifest

__version__ = "0.1.0"

__all__ = ["ClipforgeError", "Manifest", "__version__", "get_family", "list_families", "list_models"]
