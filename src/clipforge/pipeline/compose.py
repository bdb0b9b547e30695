"""Put pre-processing graphs, an fp32 encoder and an L2 normalisation together into one ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clipforge.errors import ExportError
from clipforge.pipeline._graph import IR_VERSION, OPSET, GraphBuilder

EMBEDDING = "embedding"
# ops whose signature changed between opsets 17 and 18 (``axes`` moved from attribute to input)
_CHANGED_AT_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                  "ReduceLogSumExp", "ReduceSumSquare"}


def load_encoder(path: Path):
    """An exported encoder at opset 18 (the pre-processing graphs need it), external data loaded."""
    import onnx

    return at_opset(onnx.load(str(path)), OPSET)


def at_opset(model, opset: int = OPSET):
    """``model`` with its default-domain opset raised to ``opset``. Graphs without ops whose signature changed only
    get the new import (no copy through protobuf, so > 2 GiB models work); others go through onnx's converter."""
    import onnx

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    if not _op_types(model.graph) & _CHANGED_AT_18:
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = opset
        return model
    try:
        return onnx.version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises several C++-side error types
        raise ExportError(f"cannot convert the encoder from opset {current} to {opset} ({exc}); "
                          f"re-export it with --opset {opset}") from exc


def _op_types(graph) -> set[str]:
    types = set()
    for node in graph.node:
        types.add(node.op_type)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                types |= _op_types(sub)
    return types


def l2_normalize_model(name: str, dim: int, prefix: str = "post/"):
    """``name`` float [batch, dim] -> ``embedding`` = x / max(||x||, 1e-12), row-wise."""
    from onnx import TensorProto, helper

    g = GraphBuilder(prefix)
    norm = g.op("ReduceL2", [name, g.const([1], np.int64)], keepdims=1)
    safe = g.op("Max", [norm, g.const(1e-12, np.float32)])
    g.nodes.append(helper.make_node("Div", [name, safe], [EMBEDDING], name=f"{prefix}normalize"))
    source = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch_size", dim])
    out = helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch_size", dim])
    return g.model([source], [out], doc="row-wise L2 normalisation")


def chain(first, second, names: list[str]):
    """``second`` fed by ``first``: each name in ``names`` is an output of ``first`` and an input of ``second``."""
    from onnx import compose

    first.ir_version = second.ir_version = max(first.ir_version, second.ir_version, IR_VERSION)
    _merge_opsets(first, second)
    try:
        return compose.merge_models(first, second, io_map=[(n, n) for n in names])
    except Exception as exc:
        raise ExportError(f"cannot join the graphs at {names}: {exc}") from exc


def _merge_opsets(*models) -> None:
    from onnx import helper

    versions: dict[str, int] = {}
    for model in models:
        for entry in model.opset_import:
            versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for model in models:
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())


def embedding_model(pre, encoder, joins: list[str], embed_name: str, dim: int, normalize: bool = True):
    """pre -> encoder (joined at ``joins``) -> L2 normalisation (``embedding``) when ``normalize``."""
    model = chain(pre, encoder, joins)
    if not normalize:
        return _rename_output(model, embed_name, EMBEDDING)
    return chain(model, l2_normalize_model(embed_name, dim), [embed_name])


def _rename_output(model, old: str, new: str):
    from onnx import helper

    model.graph.node.append(helper.make_node("Identity", [old], [new], name="post/output"))
    for out in model.graph.output:
        if out.name == old:
            out.name = new
    return model


def set_metadata(model, values: dict) -> None:
    """Model metadata (key -> string); non-string values are stored as JSON."""
    from onnx import helper

    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})
