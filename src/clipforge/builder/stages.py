"""Graph stages: optimise (ORT transformer fusions), quantise (int8 dynamic, int8 static QDQ, fp16), compile.

Each stage reads ``src`` and writes ``dst`` through a temporary file renamed at the end."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from pathlib import Path

from clipforge._context import temporarily
from clipforge._io import atomic_file
from clipforge.builder.build_config import CompileSection, OptimizeSection, QuantizeSection
from clipforge.runtime import cpu, optimized
from clipforge.runtime.sessions import SessionConfig, make_session, providers_for, session_options

FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "LayerNormalization",
    "QuickGelu",
    "FastGelu",
    "BiasGelu",
    "Gelu",
)


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = collections.Counter(n.op_type for n in model.graph.node)
    return {
        k: v
        for k, v in sorted(counts.items())
        if k in FUSED_OPS or "Integer" in k or k.startswith(("Quantize", "Dequantize", "MatMul", "Cast"))
    }


def optimize(src: Path, dst: Path, num_heads: int, hidden_size: int, section: OptimizeSection) -> dict:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("clip")
    options.enable_attention = section.attention
    options.enable_layer_norm = options.enable_skip_layer_norm = section.layer_norm
    options.enable_gelu = options.enable_bias_gelu = options.enable_gelu_approximation = section.gelu
    options.enable_bias_skip_layer_norm = section.bias
    with _quiet():
        model = optimize_model(
            str(src),
            model_type="clip",
            num_heads=num_heads,
            hidden_size=hidden_size,
            optimization_options=options,
            opt_level=0,
        )
    with atomic_file(dst) as tmp:
        model.save_model_to_file(str(tmp))
    return {"fused": {k: v for k, v in model.get_fused_operator_statistics().items() if v}}


def _working_dir(folder: Path):
    """quant_pre_process writes scratch files (sym_shape_infer_temp.onnx, *.data) into the current directory."""
    return temporarily(Path.cwd, os.chdir, folder)


def _pre_process(src: Path, dst: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = src.resolve(), dst.resolve()
    with _quiet(), _working_dir(dst.parent):
        try:
            quant_pre_process(str(src), str(dst), skip_optimization=False)
        except Exception:  # symbolic shape inference gives up on some graphs: ONNX shape inference suffices
            quant_pre_process(str(src), str(dst), skip_optimization=False, skip_symbolic_shape=True)


def last_matmul(path: Path) -> list[str]:
    """The final projection: the last MatMul with a constant weight."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    names = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    return names[-1:]


def quantize_dynamic(src: Path, dst: Path, section: QuantizeSection, work: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize_dynamic

    pre = work / f"{dst.stem}.pre.onnx"
    _pre_process(src, pre)
    exclude = list(section.exclude_nodes) + (last_matmul(pre) if section.keep_projection_float else [])
    with atomic_file(dst) as tmp, _quiet():
        ort_quantize_dynamic(
            str(pre),
            str(tmp),
            op_types_to_quantize=section.op_types,
            per_channel=section.per_channel,
            reduce_range=reduce_range(section),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
        )
    return {"excluded_nodes": exclude, "op_types": section.op_types, "reduce_range": reduce_range(section)}


def reduce_range(section: QuantizeSection) -> bool:
    """Quantise weights to 7 bits: asked for, or ``auto`` on a CPU whose int8 kernels saturate (no VNNI/AMX)."""
    return cpu.int8_saturates() if section.reduce_range == "auto" else bool(section.reduce_range)


# No QuantizeLinear after a MatMul: onnxruntime then fuses DQ(x), DQ(W) -> MatMul (+ bias Add) into
# MatMulIntegerToFloat, the kernel int8-dynamic runs, instead of QLinearMatMul + a float Add + a requantise.
# Profiled on the ViT-B/32-shaped image encoder (benchmarks/int8_profile.py): QLinearMatMul + Add were 82% of kernel
# time, MatMulIntegerToFloat 66% with the bias inside it; min cosine to fp32 0.99992 (was 0.99988).
STATIC_EXTRA_OPTIONS = {"MatMulConstBOnly": True, "OpTypesToExcludeOutputQuantization": ["MatMul"]}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        pass


def quantize_static(src: Path, dst: Path, section: QuantizeSection, feeds: list[dict], work: Path) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as ort_static

    pre = work / f"{dst.stem}.pre.onnx"
    _pre_process(src, pre)
    exclude = list(section.exclude_nodes) + (last_matmul(pre) if section.keep_projection_float else [])
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[section.method]
    with atomic_file(dst) as tmp, _quiet():
        ort_static(
            str(pre),
            str(tmp),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=section.op_types,
            per_channel=section.per_channel,
            reduce_range=reduce_range(section),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            extra_options=STATIC_EXTRA_OPTIONS,
        )
    return {
        "excluded_nodes": exclude,
        "op_types": section.op_types,
        "method": section.method,
        "calibration_batches": len(feeds),
        "reduce_range": reduce_range(section),
        "kept_float": ("" if "Conv" in section.op_types else "Conv (patch embedding), ") + "LayerNorm, Softmax, "
        "attention score/value MatMuls (MatMulConstBOnly), MatMul outputs (no Q after them) and the listed nodes",
    }


def to_fp16(src: Path, dst: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    with _quiet():
        half = convert_float_to_float16(model, keep_io_types=True)
    with atomic_file(dst) as tmp:
        onnx.save_model(half, str(tmp))
    return {"keep_io_types": True}


def compile_for(src: Path, dst: Path, section: CompileSection) -> dict:
    """Check the EP loads the graph and copy it to ``dst`` (the portable graph); with ``save_optimized`` also
    save onnxruntime's optimised graph beside it, used by sessions on this kind of machine
    (runtime/optimized.py)."""
    import shutil

    config = SessionConfig(device=section.ep, optimization=section.optimization_level)
    providers = providers_for(section.ep)  # a missing EP fails here, naming the package to install
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)
    optimized.remove(dst)
    if not section.save_optimized or section.optimization_level != "all":
        make_session(dst, config)  # loads on the EP
        return {"ep": section.ep, "saved_optimized": False}
    key = optimized.save(dst, section.ep, session_options(config), providers)  # its session loads on the EP
    return {"ep": section.ep, "saved_optimized": True, "optimized_for": key}
