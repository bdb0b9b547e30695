"""A measured roofline for the encoders: GEMM peaks per backend and precision on this machine (2048², threads =
cores), FLOPs per item counted from the ONNX graph, and a throughput's fraction of the limit they imply.

The limit is matmul-bound (FLOPs per item / the machine's best GEMM peak in that precision): attention softmax,
LayerNorm and pre-processing are not in it, so 100% is out of reach and the fraction says how much is left."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

GEMM_N = 2048
MATMUL_LIKE = {
    "MatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "MatMulIntegerToFloat": (0, 1),
    "DynamicQuantizeMatMul": (0, 1),
    "FusedMatMul": (0, 1),
}


CLOCKS = ("wall", "cpu")


def round_robin(calls: dict, repeats: int) -> dict:
    """{clock: {name: median seconds}}: one call of each per round, ``repeats`` rounds after one warm-up each,
    so a machine whose load changes during the run slows every entry alike. ``wall``: elapsed time; ``cpu``:
    this process's CPU time (all threads), which time-slicing by other processes does not inflate; it counts
    spin-waiting as work, so it favours no backend that spins."""
    for fn in calls.values():
        fn()  # warm-up (first-call weight packing, JIT)
    times = {clock: {name: [] for name in calls} for clock in CLOCKS}
    for _ in range(repeats):
        for name, fn in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times["wall"][name].append(time.perf_counter() - wall)
            times["cpu"][name].append(time.process_time() - cpu)
    return {clock: {name: statistics.median(t) for name, t in by.items()} for clock, by in times.items()}


def per_second(count: float, seconds: float, clock: str, threads: int | None = None) -> float:
    """Rate from a median: wall as measured; cpu scaled to the threads the run had (rate with the cores alone)."""
    return count / seconds * ((threads or os.cpu_count() or 1) if clock == "cpu" else 1)


# --- GEMM peaks ------------------------------------------------------------------------------------------
def _ort_gemm(precision: str, n: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "fp32":
        a = rng.standard_normal((n, n), np.float32)
        inits = [numpy_helper.from_array(rng.standard_normal((n, n), np.float32), "b")]
        node, a_type = helper.make_node("MatMul", ["a", "b"], ["c"]), TensorProto.FLOAT
        out_type = TensorProto.FLOAT
    elif precision == "int8":  # what int8-dynamic runs: u8 activations x s8 constant weights -> s32
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "b"),
            numpy_helper.from_array(np.array(128, np.uint8), "za"),
        ]
        node, a_type = helper.make_node("MatMulInteger", ["a", "b", "za"], ["c"]), TensorProto.UINT8
        out_type = TensorProto.INT32
    else:  # bf16: tried as is; onnxruntime's CPU provider has no bf16 MatMul kernel (NOT_IMPLEMENTED)
        return _ort_bf16_session(n, threads)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [n, n])],
        [helper.make_tensor_value_info("c", out_type, [n, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the runtime's sessions run
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return (lambda: session.run(None, {"a": a})), None


def _ort_bf16_session(n: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(x, TensorProto.BFLOAT16, [n, n]) for x in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", io[:2], io[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        return None, f"onnxruntime: {str(exc).split(' : ')[-1][:80]}"
    return None, "onnxruntime: a bf16 MatMul session loads but numpy cannot feed bf16 here"


def _ov_gemm(precision: str, n: int, threads: int):
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), np.float32)
    param = ops.parameter([n, n], np.float32, name="a")
    weight = ops.constant(rng.standard_normal((n, n), np.float32))
    left, right = param, weight
    if precision == "int8":  # QDQ as OpenVINO sees it: FakeQuantize on both inputs -> an int8 MatMul
        lo, hi = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
        left = ops.fake_quantize(param, lo, hi, lo, hi, 256)
        right = ops.fake_quantize(weight, lo, hi, lo, hi, 255)
    model = ov.Model([ops.matmul(left, right, False, False)], [param])
    hint = "bf16" if precision == "bf16" else "f32"
    compiled = ov.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)}
    )
    request = compiled.create_infer_request()
    return (lambda: request.infer({0: a})), None


def _torch_gemm(precision: str, n: int, threads: int):
    import torch

    torch.set_num_threads(threads)
    if precision == "int8":
        a, b = (torch.randint(-127, 128, (n, n), dtype=torch.int8) for _ in range(2))
        return (lambda: torch._int_mm(a, b)), None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, dtype=dtype) for _ in range(2))
    return (lambda: a @ b), None


GEMMS = {"onnxruntime": _ort_gemm, "openvino": _ov_gemm, "pytorch": _torch_gemm}
PRECISIONS = ("fp32", "bf16", "int8")


def gemm_calls(backends=tuple(GEMMS), n: int = GEMM_N, threads: int | None = None) -> tuple[dict, dict]:
    """({(backend, precision): call}, {backend: {precision: why not}}) for every GEMM this install can run."""
    threads = threads or os.cpu_count() or 1
    calls, peaks = {}, {backend: {} for backend in backends}
    for backend in backends:
        for precision in PRECISIONS:
            try:
                fn, why = GEMMS[backend](precision, n, threads)
            except Exception as exc:  # a backend/precision this install lacks: say why, measure the rest
                fn, why = None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            peaks[backend][precision] = why
            if fn is not None:
                calls[(backend, precision)] = fn
    return calls, peaks


def peaks_from(medians: dict, reasons: dict, n: int = GEMM_N, clock: str = "wall") -> dict:
    """{backend: {precision: GFLOP/s or why not}} from round-robin medians keyed like ``gemm_calls``."""
    peaks = {b: dict(row) for b, row in reasons.items()}
    for key, seconds in medians.items():
        if isinstance(key, tuple) and len(key) == 2 and key[0] in peaks:
            peaks[key[0]][key[1]] = round(per_second(2 * n**3 / 1e9, seconds, clock), 1)
    return peaks


def gemm_peaks(
    backends=tuple(GEMMS), n: int = GEMM_N, threads: int | None = None, repeats: int = 5, clock: str = "wall"
) -> dict:
    """{backend: {precision: GFLOP/s (GOP/s for int8) or a string saying why not measured}}."""
    calls, reasons = gemm_calls(backends, n, threads)
    return peaks_from(round_robin(calls, repeats)[clock], reasons, n, clock)


def best_peaks(peaks: dict) -> dict:
    """{precision: (GFLOP/s, backend)}: the machine's best measured GEMM in each precision."""
    best = {}
    for backend, row in peaks.items():
        for precision, value in row.items():
            if isinstance(value, float) and value > best.get(precision, (0.0, ""))[0]:
                best[precision] = (value, backend)
    return best


# --- FLOPs per item -----------------------------------------------------------------------------------------
def _fixed_inputs(model, text_length: int, patches: int | None = None) -> None:
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if not d.dim_value:
                d.dim_value = 1 if i == 0 else (patches if d.dim_param == "num_patches" and patches else text_length)


def _shapes(model) -> dict[str, list[int]]:
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    return shapes


def _node_flops(node, shapes: dict) -> float:
    out = shapes.get(node.output[0], [])
    if node.op_type in MATMUL_LIKE:
        a, _ = MATMUL_LIKE[node.op_type]
        return 2.0 * float(np.prod(out)) * shapes.get(node.input[a], [0])[-1] if out else 0.0
    if node.op_type == "Gemm":
        return 2.0 * float(np.prod(out)) * shapes.get(node.input[1], [0])[0] if out else 0.0
    if node.op_type in ("Conv", "ConvInteger"):
        w = shapes.get(node.input[1], [])
        return 2.0 * float(np.prod(out)) * float(np.prod(w[1:])) if out and w else 0.0
    if node.op_type in ("Attention", "MultiHeadAttention"):  # com.microsoft fused attention
        b, s, d = (shapes.get(node.input[0], [0, 0, 0]) + [0, 0, 0])[:3]
        proj = 2.0 * b * s * d * shapes.get(node.input[1], [0, 0])[-1] if node.op_type == "Attention" else 0.0
        return proj + 4.0 * b * s * s * (out[-1] if out else d)
    return 0.0


def flops_per_item(path: str | Path, text_length: int = 77, patches: int | None = None) -> float:
    """Multiply-add FLOPs (2 per MAC) of one item (batch 1; texts of ``text_length`` tokens; a NaFlex image of
    ``patches`` patches, the budget: padding patches cost what real ones do) through the graph,
    counted from MatMul/Gemm/Conv and fused attention; shapes from onnxruntime's symbolic inference (it follows
    the Shape->Reshape arithmetic of text encoders, where onnx's own inference stops, and knows contrib ops)."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path))
    _fixed_inputs(model, text_length, patches)
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = _shapes(inferred)
    return sum(_node_flops(node, shapes) for node in inferred.graph.node)


def graph_precision(path: str | Path, recorded: str | None = None) -> str:
    """int8 when the graph holds integer/QDQ matmuls, else the recorded run-time precision (bf16) or fp32."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    if ops & {"MatMulInteger", "QLinearMatMul", "DequantizeLinear", "DynamicQuantizeMatMul"}:
        return "int8"
    return recorded if recorded in PRECISIONS else "fp32"


def fraction(items_per_s: float, flops: float, peak_gflops: float) -> dict:
    """Achieved items/s against the matmul limit ``peak / flops``."""
    limit = peak_gflops * 1e9 / flops if flops else float("nan")
    return {"limit_per_s": round(limit, 1), "fraction": round(items_per_s / limit, 3) if flops else None}
