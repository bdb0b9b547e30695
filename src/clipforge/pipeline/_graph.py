"""A small ONNX graph builder for the pre-/post-processing graphs: unique prefixed names, constants, and the
opset/domain imports the onnxruntime-extensions custom ops need."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipforge.errors import require
from clipforge.runtime.sessions import log_severity

OPSET = 18  # Resize's ``antialias`` (needed to match PIL's downscaling) appeared in opset 18
IR_VERSION = 8  # what the TorchScript exporter writes; every onnxruntime >= 1.14 loads it
CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' text ops (tokenizers, string ops)
EXTENSIONS = "com.microsoft.extensions"  # onnxruntime-extensions' newer ops (DecodeImage)
DOMAINS = {"": OPSET, CONTRIB: 1, EXTENSIONS: 1}
# ONNX tensor element types: the values of ``onnx.TensorProto.DataType``, fixed by the ONNX spec. Spelled out here
# so the graph modules import without onnx, which takes over a second and must stay off the CLI's start path.
FLOAT, UINT8, INT32, INT64, STRING, DOUBLE = 1, 2, 6, 7, 8, 11


class GraphBuilder:
    """Collect nodes and initializers whose names all start with ``prefix``; ``op`` returns output names."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, hint: str = "t") -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, dtype=None, hint: str = "c") -> str:
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype)
        if array.dtype.kind in "US":
            array = array.astype(object)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(
        self, op_type: str, inputs: list[str], outputs: int = 1, *, domain: str = "", name: str | None = None, **attrs
    ):
        from onnx import helper

        outs = [self.name(op_type.lower()) for _ in range(outputs)]
        node_name = name or self.name(f"node_{op_type}")
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, domain=domain, **attrs))
        return outs[0] if outputs == 1 else outs

    def model(self, inputs: list, outputs: list, doc: str = ""):
        """A ModelProto of this graph; ``inputs``/``outputs`` are ValueInfoProtos (helper.make_tensor_value_info)."""
        from onnx import helper

        graph = helper.make_graph(self.nodes, f"{self.prefix}graph", inputs, outputs, self.initializers, doc_string=doc)
        opsets = [helper.make_opsetid(domain, version) for domain, version in DOMAINS.items()]
        return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="clipforge")


def extensions_session(model, threads: int | None = None, quiet: bool = False):
    """An onnxruntime session (CPU) for ``model`` (a ModelProto or a path) with the extensions' ops registered;
    ``quiet`` keeps onnxruntime from logging errors the caller reports itself."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4 if quiet else log_severity()  # quiet: fatal only
    source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def extensions_library() -> str:
    """Path of onnxruntime-extensions' custom-op library, found without importing the package: its
    ``__init__`` imports transformers (and with it torch) whenever they are installed, seconds of start-up that
    the torch-free runtime does not need."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    folders = list(spec.submodule_search_locations or []) if spec else []
    suffixes = (".so", ".pyd", ".dylib")
    found = [p for f in folders for p in sorted(Path(f).glob("_extensions_pydll*")) if p.suffix in suffixes]
    if found:
        return str(found[0])
    return require("onnxruntime_extensions", "extensions").get_library_path()
