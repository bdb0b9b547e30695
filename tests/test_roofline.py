"""Roofline: FLOPs counted from graphs, GEMM peaks per backend/precision, and perf's --roofline/--backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from clipforge.perf import roofline
from clipforge.runtime.backends import openvino_available


def test_flops_counted_from_matmul_gemm_and_conv(tmp_path):
    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    inits = [w(8, 3, 4, 4), w(64, 5), w(5, 7)]
    for init, name in zip(inits, ("cw", "mw", "gw")):
        init.name = name
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], strides=[4, 4]),  # [b,8,4,4]: 2*8*16*(3*16) MACs*2
        helper.make_node("Reshape", ["c", "shape"], ["r"]),  # [b, 2, 64]
        helper.make_node("MatMul", ["r", "mw"], ["m"]),  # [b,2,5]: 2*2*5*64
        helper.make_node("Flatten", ["m"], ["f"]),  # [b,10] -> take 5 with a Slice-free Gemm on [b,10]? no:
        helper.make_node("Gemm", ["f", "gw2"], ["y"]),
    ]
    inits += [numpy_helper.from_array(np.array([0, 2, 64], np.int64), "shape"), w(10, 7)]
    inits[-1].name = "gw2"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 7])],
        inits,
    )
    path = tmp_path / "g.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    expected = 2 * (8 * 4 * 4) * (3 * 4 * 4) + 2 * (2 * 5) * 64 + 2 * 7 * 10
    assert roofline.flops_per_item(path) == expected
    assert roofline.graph_precision(path) == "fp32" and roofline.graph_precision(path, "bf16") == "bf16"


def test_gemm_peaks_measure_or_say_why(monkeypatch):
    peaks = roofline.gemm_peaks(["onnxruntime"], n=128, repeats=1)["onnxruntime"]
    assert isinstance(peaks["fp32"], float) and isinstance(peaks["int8"], float)
    assert "Could not find an implementation" in peaks["bf16"]  # onnxruntime's CPU provider has no bf16 MatMul
    best = roofline.best_peaks({"a": {"fp32": 10.0, "int8": "no"}, "b": {"fp32": 20.0, "int8": 5.0}})
    assert best == {"fp32": (20.0, "b"), "int8": (5.0, "b")}
    assert roofline.fraction(5.0, 2e9, 20.0) == {"limit_per_s": 10.0, "fraction": 0.5}


@pytest.mark.slow
@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
def test_perf_roofline_column_on_openvino(tiny_clip, tmp_path):
    from clipforge.cli.main import main
    from clipforge.export import export_model

    folder = export_model(tiny_clip, tmp_path / "e", show_progress=False).path
    out = tmp_path / "p.json"
    assert (
        main(
            [
                "perf",
                str(folder),
                "--batch-size",
                "2",
                "--iterations",
                "2",
                "--warmup",
                "1",
                "--backend",
                "openvino",
                "--roofline",
                "--gemm-size",
                "256",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    assert [(r["backend"], r["precision"]) for r in rows] == [("openvino", "fp32")] * 2
    image, text = rows
    flops = {
        "image": roofline.flops_per_item(folder / "image-encoder" / "model.onnx"),
        "text": roofline.flops_per_item(folder / "text-encoder" / "model.onnx", text["text_length"]),
    }
    # both rows are fp32: their limits imply the same GEMM peak (limit x FLOPs per item)
    assert image["limit_per_s"] * flops["image"] == pytest.approx(text["limit_per_s"] * flops["text"], rel=0.02)
    assert image["fraction"] > 0 and text["fraction"] > 0
