"""Put pre-processing graphs, an fp32 encoder and an L2 normalisation together into one ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clipforge.errors import ExportError
from clipforge.pipeline._graph import IR_VERSION, OPSET, GraphBuilder

EMBEDDING = "embedding"
# ops whose signature changed between opsets 17 and 18 (``axes`` moved from attribute to input)
_CHANGED_AT_18 = {
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
}


def load_encoder(path: Path):
    """An exported encoder at opset 18 (the pre-processing graphs need it), external data loaded, nodes in
    topological order (fp16 builds append their input casts at the end, which onnx's merge refuses)."""
    import onnx

    model = at_opset(onnx.load(str(path)), OPSET)
    topological_sort(model.graph)
    return model


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after the nodes producing its inputs (names a
    node's subgraphs use from the outer scope count as inputs). Stable: sorted graphs keep their order."""
    import heapq

    produced_by = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    needs = [{produced_by[n] for n in _used_names(node) if n in produced_by} - {i} for i, node in enumerate(graph.node)]
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(needs):
        for d in deps:
            users.setdefault(d, []).append(i)
    waiting = [len(deps) for deps in needs]
    ready = [i for i, n in enumerate(waiting) if n == 0]
    order = []
    while ready:  # Kahn's algorithm, lowest original index first
        i = heapq.heappop(ready)
        order.append(i)
        for user in users.get(i, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(graph.node):
        raise ExportError("the encoder graph has a cycle; re-export it")
    if order != list(range(len(graph.node))):
        nodes = [graph.node[i] for i in order]
        del graph.node[:]
        graph.node.extend(nodes)


def _subgraphs(node) -> list:
    """The graphs held in ``node``'s attributes (If branches, Loop/Scan bodies)."""
    return [g for attr in node.attribute for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)]


def _used_names(node) -> set[str]:
    names = set(node.input)
    for sub in _subgraphs(node):
        for inner in sub.node:
            names |= _used_names(inner)
    return names


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
        raise ExportError(
            f"cannot convert the encoder from opset {current} to {opset} ({exc}); re-export it with opset={opset}"
        ) from exc


def _op_types(graph) -> set[str]:
    types = set()
    for node in graph.node:
        types.add(node.op_type)
        for sub in _subgraphs(node):
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
