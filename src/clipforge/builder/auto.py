"""``--quantize auto``: build each encoder in several precisions, run each graph on every (backend, precision)
this machine offers for it (onnxruntime, OpenVINO, bf16 where the CPU has it), measure zero-shot top-1 on the
labelled calibration set and inference time per encoder (``ctx.timer``: sessions made outside the timing), then
keep the fastest combination within ``max_accuracy_drop``; the chosen backends/precisions go to build.json."""

from __future__ import annotations

import shutil
from pathlib import Path

from clipforge.builder.parity import embed, zero_shot_top1
from clipforge.builder.roles import build_role
from clipforge.builder.runtimes import Runtime, available, combinations
from clipforge.errors import BuildError, InputError
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE

CANDIDATE_MODES = {
    IMAGE_ROLE: ("none", "int8-dynamic", "int8-static", "bf16"),
    TEXT_ROLE: ("none", "int8-dynamic", "bf16"),
}


def _variants(ctx, tmp: Path) -> tuple[dict, dict]:
    """({(encoder, Runtime): {"path", "stages", "embeddings", "seconds"}}, {"encoder:mode": error}): every graph
    built once, then embedded and timed on each (backend, precision) this machine offers for it."""
    variants, failed = {}, {}
    for encoder in ROLES:
        for mode in CANDIDATE_MODES[encoder]:
            runtimes = available(mode)
            if not runtimes:
                continue  # e.g. bf16 without openvino or on a CPU without bf16
            path = ctx.work / "auto" / encoder / mode / "model.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                records = build_role(encoder, mode, path, ctx)
            except BuildError as exc:
                failed[f"{encoder}:{mode}"] = str(exc)
                continue
            for rt in runtimes:
                variants[(encoder, rt)] = {
                    "path": path,
                    "stages": records,
                    "embeddings": embed(path, encoder, ctx.probe, ctx.fp32, rt.session),
                    "seconds": time_on(ctx.timer, path, encoder, rt),
                }
    return variants, failed


def time_on(timer, path: Path, encoder: str, rt: Runtime) -> float:
    """The build's timer on ``rt``; onnxruntime/fp32 is timed as ``timer(path, encoder)`` (the plain timer)."""
    if (rt.backend, rt.precision) == ("onnxruntime", "fp32"):
        return timer(path, encoder)
    return timer(path, encoder, session=rt.session)


def pick_fastest(tried: list[dict], max_drop: float) -> dict[str, str]:
    """The candidate with the least inference time (image + text seconds) among those whose top-1 drop is within
    ``max_drop`` percentage points; fp32+fp32 (drop 0) always qualifies. Returns {encoder: mode}."""
    best = pick_candidate(tried, max_drop)
    return {IMAGE_ROLE: best["image"], TEXT_ROLE: best["text"]}


def pick_candidate(tried: list[dict], max_drop: float) -> dict:
    allowed = [t for t in tried if t["drop_pp"] <= max_drop]
    if not allowed:
        raise BuildError("quantize='auto': no candidate within the allowed accuracy drop (fp32 failed to build?)")
    return min(allowed, key=lambda t: t["seconds"])


def choose_auto(ctx, tmp: Path) -> dict:
    calib = ctx.probe.calibration
    if not calib.labels or not calib.class_names:
        raise InputError(
            "quantize='auto' needs labelled data: pass calibration_data= with an image folder of "
            "class sub-folders or a labelled parquet file"
        )
    variants, failed = _variants(ctx, tmp)
    baseline = zero_shot_top1(ctx.probe.reference[IMAGE_ROLE], ctx.probe.reference[TEXT_ROLE], calib.labels)
    tried = combinations(variants, lambda i, t: zero_shot_top1(i, t, calib.labels), baseline)
    best = pick_candidate(tried, ctx.config.quantize.max_accuracy_drop)
    chosen = {IMAGE_ROLE: best["image"], TEXT_ROLE: best["text"]}
    runtime = {IMAGE_ROLE: Runtime(**best["image_runtime"]), TEXT_ROLE: Runtime(**best["text_runtime"])}
    for encoder in ctx.config.roles:
        (tmp / encoder).mkdir(exist_ok=True)
        shutil.copyfile(variants[(encoder, runtime[encoder])]["path"], tmp / encoder / "model.onnx")
    return {
        "fp32_top1": baseline,
        "max_accuracy_drop": ctx.config.quantize.max_accuracy_drop,
        "candidates": tried,
        "chosen": chosen,
        "failed": failed,
        "runtime": {r: {"backend": runtime[r].backend, "precision": runtime[r].precision} for r in ctx.config.roles},
        "chosen_stages": {
            r: {"quantize": chosen[r], "stages": variants[(r, runtime[r])]["stages"]} for r in ctx.config.roles
        },
    }
