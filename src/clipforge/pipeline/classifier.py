"""A fixed-label classifier in one ONNX file: pixel_values (or, with pre-processing, encoded image bytes) ->
``scores`` [batch, n_labels] and ``label_index`` [batch].

The label texts (template ensembles averaged, then normalised) are baked in as a constant; scores are softmax
over scaled cosines for CLIP and sigmoid(scale * cosine + bias) for SigLIP. Labels, templates, mean/std and
image size go in the model's metadata. The graph is simplified with onnxslim when it is installed and validated
against ``ZeroShotModel``: scores within 1e-5 of ``classify`` for pixel input; for encoded input within 1e-5 of
the runtime fed the graph's own pre-processed pixels, and the gap to the runtime's pre-processing is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clipforge._io import atomic_file, check_output
from clipforge.errors import InputError, ValidationError
from clipforge.export.cases import random_images
from clipforge.models import open_model
from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.checks import encode, sample_images
from clipforge.pipeline.compose import at_opset, chain, topological_sort
from clipforge.pipeline.image_graph import image_model
from clipforge.runtime.labels import check_labels, check_templates
from clipforge.runtime.scoring import l2_normalize


def _head_nodes(helper, numpy_helper, embeds: str, text: np.ndarray, scale: float, bias: float | None):
    consts = [
        numpy_helper.from_array(text.T.astype(np.float32), "clf_text_embeds_T"),
        numpy_helper.from_array(np.array(scale, np.float32), "clf_logit_scale"),
    ]
    nodes = [
        helper.make_node("ReduceL2", [embeds], ["clf_norm"], axes=[1], keepdims=1),  # opset 17 form
        helper.make_node("Div", [embeds, "clf_norm"], ["clf_unit"]),
        helper.make_node("MatMul", ["clf_unit", "clf_text_embeds_T"], ["clf_cos"]),
        helper.make_node("Mul", ["clf_cos", "clf_logit_scale"], ["clf_logits"]),
    ]
    if bias is None:
        nodes.append(helper.make_node("Softmax", ["clf_logits"], ["scores"], axis=-1))
    else:
        consts.append(numpy_helper.from_array(np.array(bias, np.float32), "clf_logit_bias"))
        nodes += [
            helper.make_node("Add", ["clf_logits", "clf_logit_bias"], ["clf_biased"]),
            helper.make_node("Sigmoid", ["clf_biased"], ["scores"]),
        ]
    nodes.append(helper.make_node("ArgMax", ["scores"], ["label_index"], axis=1, keepdims=0))
    return nodes, consts


def build_graph(image_onnx: Path, model, labels: list[str], templates: list[str]):
    """The image encoder + the classification head: ``pixel_values`` -> ``scores``, ``label_index``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph_model = onnx.load(str(image_onnx))
    graph = graph_model.graph
    text = model.label_embeddings(labels, templates)
    m = model.manifest
    nodes, consts = _head_nodes(helper, numpy_helper, graph.output[0].name, text, m.logit_scale, m.logit_bias)
    graph.node.extend(nodes)
    graph.initializer.extend(consts)
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch_size", len(labels)]),
            helper.make_tensor_value_info("label_index", TensorProto.INT64, ["batch_size"]),
        ]
    )
    topological_sort(graph)  # fp16 builds put their input casts last
    return graph_model


def add_preprocessing(graph_model, spec):
    """Encoded image bytes -> the classifier: the pipeline's in-graph decode and pre-processing in front."""

    return chain(image_model(spec, encoded=True), at_opset(graph_model), ["pixel_values"])


def _metadata(model, labels: list[str], templates: list[str], encoded: bool) -> dict:
    m = model.manifest
    return {
        "labels": json.dumps(labels),
        "templates": json.dumps(templates),
        "family": m.family,
        "image_size": json.dumps(list(m.image.output_size)),
        "mean": json.dumps(list(m.image.mean)),
        "std": json.dumps(list(m.image.std)),
        "rescale_factor": str(m.image.rescale_factor),
        "preprocessing": json.dumps(m.image.__dict__),
        "source": m.source,
        "input": "encoded PNG/JPEG bytes (uint8 [num_bytes])" if encoded else "pixel_values [batch, 3, H, W]",
    }


def _simplify(model):
    try:
        import onnxslim
    except ImportError:
        return model
    return onnxslim.slim(model)


def _pixel_scores(model, pixels: np.ndarray, labels: list[str], templates: list[str]) -> np.ndarray:

    image = l2_normalize(model.encode_pixels(pixels))
    return model.scores(model.logits(image, model.label_embeddings(labels, templates)))


def validate_classifier(path: Path, model, labels: list[str], templates: list[str], atol: float = 1e-5) -> dict:
    import onnxruntime as ort

    images = random_images(5, seed=7)
    scores, index = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"pixel_values": model.preprocess(images)}
    )
    want = model.scores(model.logits(model.embed_images(images), model.label_embeddings(labels, templates)))
    diff = float(np.abs(scores - want).max())
    failures = [f"scores differ from ZeroShotModel.classify by {diff:.2e} > {atol:.0e}"] if diff > atol else []
    if not np.array_equal(index, want.argmax(1)):
        failures.append("label_index differs from the argmax of the runtime's scores")
    if failures:
        raise ValidationError("classifier", failures)
    return {"max_abs_diff": diff}


def validate_encoded_classifier(path: Path, model, labels: list[str], templates: list[str], atol: float = 1e-5) -> dict:
    """Scores on PNG bytes vs the runtime fed the graph's own pixels (``atol``) and vs ``classify`` (reported)."""

    session, pre = extensions_session(path, quiet=True), extensions_session(image_model(model.manifest.image))
    exact, gap, failures = 0.0, 0.0, []
    text = model.label_embeddings(labels, templates)
    for data in (encode(array) for array in sample_images()):
        feed = {"image": np.frombuffer(data, np.uint8)}
        scores, index = session.run(None, feed)
        want = _pixel_scores(model, pre.run(None, feed)[0], labels, templates)
        runtime = model.scores(model.logits(model.embed_images([data]), text))
        exact, gap = max(exact, float(np.abs(scores - want).max())), max(gap, float(np.abs(scores - runtime).max()))
        if not np.array_equal(index, want.argmax(1)):
            failures.append("label_index differs from the argmax of the runtime's scores")
    if exact > atol:
        failures.insert(0, f"scores differ from the runtime on the same pixels by {exact:.2e} > {atol:.0e}")
    if failures:
        raise ValidationError("classifier", sorted(set(failures)))
    return {"max_abs_diff": exact, "max_abs_diff_vs_runtime_preprocessing": gap}


def export_classifier(
    model_id,
    output: str | Path,
    labels: list[str],
    templates: list[str],
    force: bool = False,
    with_preprocessing: bool = False,
) -> dict:
    """Export ``model_id`` (checkpoint, hub id or exported folder) as one classifier graph at ``output``;
    ``with_preprocessing`` makes its input encoded PNG/JPEG bytes instead of ``pixel_values``."""
    import onnx

    labels, templates = check_labels(labels), check_templates(templates)
    output = Path(output)
    check_output(output, force)
    model = open_model(model_id, show_progress=False)  # a checkpoint is exported once, cached
    if model.manifest.image.naflex:
        raise InputError(
            f"{model_id} is SigLIP 2 NaFlex (a patch budget per image): the classifier graph takes fixed-size "
            "pixel_values only; classify with the Python runtime (clipforge classify, serve)"
        )
    graph = build_graph(model.folder / model.manifest.encoders["image-encoder"], model, labels, templates)
    if with_preprocessing:
        graph = add_preprocessing(graph, model.manifest.image)
    graph = _simplify(graph)
    onnx.helper.set_model_props(graph, _metadata(model, labels, templates, with_preprocessing))
    with atomic_file(output) as staged:
        onnx.save_model(graph, str(staged))
        check = validate_encoded_classifier if with_preprocessing else validate_classifier
        atol = score_tolerance(model.manifest)
        report = check(staged, model, labels, templates, atol=atol)
    return {"path": str(output), "labels": len(labels), "templates": len(templates), "atol": atol, **report}


def score_tolerance(manifest) -> float:
    """1e-5 for fp32 and int8 encoders; 1e-3 for fp16 builds, whose results move by ~1e-4 when onnxruntime
    places its fp16 <-> fp32 casts differently in the larger graph."""
    mode = manifest.build.get("config", {}).get("quantize", {}).get("mode") if manifest.build else None
    return 1e-3 if mode == "fp16" else 1e-5
