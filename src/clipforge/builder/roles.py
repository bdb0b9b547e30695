"""Build one encoder: optimise -> quantise -> compile, each stage timed, sized, counted and checked vs fp32."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from clipforge._faults import kill_point
from clipforge.builder import stages
from clipforge.builder.build_config import RUNTIME_PRECISION
from clipforge.builder.parity import Probe, embed, feeds, parity
from clipforge.errors import BuildError
from clipforge.runtime import optimized
from clipforge.runtime.encoders import Encoder
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.sessions import SessionConfig, make_session

# Minimum cosine to the fp32 export a stage must keep, by what it does.
MIN_COSINE = {
    "optimize": 0.9999,
    "fp16": 0.999,
    "bf16": 0.999,
    "int8-dynamic": 0.95,
    "int8-static": 0.95,
    "compile": 0.9999,
}
# A fused graph is kept when its inference time is at most this factor of the unfused graph's (timing noise).
NOT_SLOWER = 1.05
# Largest difference (normalised embeddings) between the saved optimised graph and the portable one it came from.
SAVED_GRAPH_TOLERANCE = 1e-5


def encoder_shape(manifest, role: str) -> tuple[int, int] | None:
    """(num_heads, hidden_size) of a transformer encoder, as the family recorded it at export; None otherwise."""
    info = manifest.towers.get(role)
    if info is None:
        raise BuildError(f"the export's manifest has no 'towers' record for {role}; re-export with this clipforge")
    if info.get("arch") != "transformer":
        return None
    return int(info["num_heads"]), int(info["hidden_size"])


def _record(
    name: str,
    path: Path,
    start: float,
    role: str,
    probe: Probe,
    fp32: ZeroShotModel,
    extra: dict,
    session: SessionConfig = SessionConfig(),
) -> dict:
    check = parity(path, role, probe, fp32, session)
    return {
        "stage": name,
        "seconds": round(time.perf_counter() - start, 3),
        "bytes": path.stat().st_size,
        "ops": stages.op_counts(path),
        "parity": check,
        **extra,
    }


def _optimize(src: Path, work: Path, role: str, ctx) -> tuple[Path, dict]:
    start = time.perf_counter()
    dst = work / "optimized.onnx"
    heads, hidden = encoder_shape(ctx.fp32.manifest, role)
    info = stages.optimize(src, dst, heads, hidden, ctx.config.optimize)
    record = _record("optimize", dst, start, role, ctx.probe, ctx.fp32, info)
    fused, unfused = ctx.timer(dst, role), ctx.timer(src, role)
    faster = fused <= NOT_SLOWER * unfused
    keep = record["parity"]["min_cosine"] >= MIN_COSINE["optimize"] and faster
    record["kept"] = keep
    record["inference_seconds"] = {"fused": fused, "unfused": unfused}
    record["why"] = "validated and not slower" if keep else ("slower than unfused" if not faster else "drifted")
    return (dst if keep else src), record


def quantize_section(ctx, role: str, mode: str):
    """The quantize section for ``role``: a ResNet encoder's Convs join the quantised ops for int8-static
    (``resnet_convs``); dynamic int8 keeps them float (ConvInteger has no fast kernel)."""
    section = ctx.config.quantize
    resnet = ctx.fp32.manifest.towers.get(role, {}).get("arch") == "resnet"
    if resnet and mode == "int8-static" and section.resnet_convs and "Conv" not in section.op_types:
        return replace(section, op_types=[*section.op_types, "Conv"])
    return section


def _quantize(src: Path, work: Path, role: str, mode: str, ctx) -> tuple[Path, dict]:
    start = time.perf_counter()
    dst = work / f"{mode}.onnx"
    section = quantize_section(ctx, role, mode)
    if mode == "int8-dynamic":
        info = stages.quantize_dynamic(src, dst, section, work)
    elif mode == "int8-static":
        encoder = Encoder(make_session(src, SessionConfig()), role)
        info = stages.quantize_static(src, dst, section, feeds(ctx.probe, role, encoder), work)
    elif mode == "bf16":
        return _runtime_precision(src, role, mode, ctx, start)
    else:
        info = stages.to_fp16(src, dst)
    record = _record(f"quantize:{mode}", dst, start, role, ctx.probe, ctx.fp32, info)
    if record["parity"]["min_cosine"] < MIN_COSINE[mode]:
        raise BuildError(
            f"{role} {mode}: min cosine to fp32 {record['parity']['min_cosine']:.4f} < "
            f"{MIN_COSINE[mode]}; exclude more nodes (quantize.exclude_nodes) or use another mode"
        )
    return dst, record


def runtime_session(mode: str) -> SessionConfig:
    """How a graph built in ``mode`` runs: bf16 keeps the fp32 graph and runs it with OpenVINO's bf16 hint
    (without OpenVINO's compiled-model cache: the build's scratch graphs would fill it)."""
    hint = RUNTIME_PRECISION.get(mode)
    if not hint:
        return SessionConfig()
    return SessionConfig(backend=hint["backend"], precision=hint["precision"], compile_cache=False)


def _runtime_precision(src: Path, role: str, mode: str, ctx, start: float) -> tuple[Path, dict]:
    """The graph stays fp32 (weights, accumulation); the backend computes matmuls in ``mode`` at run time.
    Parity is measured on that backend, so the record is what the runtime will give."""
    record = _record(
        f"quantize:{mode}",
        src,
        start,
        role,
        ctx.probe,
        ctx.fp32,
        {"runtime": RUNTIME_PRECISION[mode]},
        runtime_session(mode),
    )
    if record["parity"]["min_cosine"] < MIN_COSINE[mode]:
        raise BuildError(
            f"{role} {mode}: min cosine to fp32 {record['parity']['min_cosine']:.4f} < "
            f"{MIN_COSINE[mode]}; use quantize='none'"
        )
    return src, record


def build_role(role: str, mode: str, out: Path, ctx) -> list[dict]:
    """Run the stages for ``role`` with quantisation ``mode``; the result lands at ``out``."""
    work = ctx.work / role / mode
    work.mkdir(parents=True, exist_ok=True)
    current, records = ctx.fp32_folder / role / "model.onnx", []
    if ctx.config.optimize.enabled and mode in ("none", "fp16") and encoder_shape(ctx.fp32.manifest, role):
        kill_point("optimize")
        current, record = _optimize(current, work, role, ctx)
        records.append(record)
    if mode != "none":
        kill_point("quantize")
        current, record = _quantize(current, work, role, mode, ctx)
        records.append(record)
    kill_point("compile")
    start = time.perf_counter()
    info = stages.compile_for(current, out, ctx.config.compile)
    if info["saved_optimized"]:
        info.update(_check_saved(out, role, ctx))
    records.append(_record("compile", out, start, role, ctx.probe, ctx.fp32, info, runtime_session(mode)))
    return records


def _check_saved(out: Path, role: str, ctx) -> dict:
    """The saved optimised graph must give what the portable graph gives on this machine (it is the same
    optimisation, so it does, bit for bit, unless something is wrong): otherwise it is removed."""

    saved = embed(out, role, ctx.probe, ctx.fp32)
    portable = embed(out, role, ctx.probe, ctx.fp32, SessionConfig(saved_graph=False))
    diff = float(abs(saved - portable).max())
    if diff > SAVED_GRAPH_TOLERANCE:
        optimized.remove(out)
        return {"saved_optimized": False, "why": f"saved graph differs from the portable one by {diff:.2e}"}
    return {"saved_vs_portable_max_abs": diff}
