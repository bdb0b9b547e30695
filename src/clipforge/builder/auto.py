"""``--quantize auto``: build each encoder in several precisions, measure zero-shot top-1 on the labelled
calibration set and inference time per encoder (``ctx.timer``: sessions made outside the timing), then keep the
fastest combination within ``max_accuracy_drop``."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

from clipforge.builder.parity import embed, zero_shot_top1
from clipforge.builder.roles import build_role
from clipforge.errors import BuildError, InputError
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE

CANDIDATE_MODES = {IMAGE_ROLE: ("none", "int8-dynamic", "int8-static"), TEXT_ROLE: ("none", "int8-dynamic")}


def _variants(ctx, tmp: Path) -> dict:
    variants = {}
    for role in ROLES:
        for mode in CANDIDATE_MODES[role]:
            path = ctx.work / "auto" / role / mode / "model.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                records = build_role(role, mode, path, ctx)
            except BuildError as exc:
                variants[(role, mode)] = {"error": str(exc)}
                continue
            variants[(role, mode)] = {"path": path, "stages": records,
                                      "embeddings": embed(path, role, ctx.probe, ctx.fp32),
                                      "seconds": ctx.timer(path, role)}
    return variants


def pick_fastest(tried: list[dict], max_drop: float) -> dict[str, str]:
    """The candidate with the least inference time (image + text seconds) among those whose top-1 drop is within
    ``max_drop`` percentage points; fp32+fp32 (drop 0) always qualifies."""
    allowed = [t for t in tried if t["drop_pp"] <= max_drop]
    if not allowed:
        raise BuildError("--quantize auto: no candidate within the allowed accuracy drop (fp32 failed to build?)")
    best = min(allowed, key=lambda t: t["seconds"])
    return {IMAGE_ROLE: best["image"], TEXT_ROLE: best["text"]}


def choose_auto(ctx, tmp: Path) -> dict:
    calib = ctx.probe.calibration
    if not calib.labels or not calib.class_names:
        raise InputError("--quantize auto needs labelled data: pass --calibration-data with an image folder of "
                         "class sub-folders or a labelled parquet file")
    variants = _variants(ctx, tmp)
    ok = {k: v for k, v in variants.items() if "error" not in v}
    baseline = zero_shot_top1(ctx.probe.reference[IMAGE_ROLE], ctx.probe.reference[TEXT_ROLE], calib.labels)
    tried = []
    for img_mode, txt_mode in itertools.product(CANDIDATE_MODES[IMAGE_ROLE], CANDIDATE_MODES[TEXT_ROLE]):
        img, txt = ok.get((IMAGE_ROLE, img_mode)), ok.get((TEXT_ROLE, txt_mode))
        if img is None or txt is None:
            continue
        top1 = zero_shot_top1(img["embeddings"], txt["embeddings"], calib.labels)
        tried.append({"image": img_mode, "text": txt_mode, "top1": top1, "drop_pp": baseline - top1,
                      "seconds": img["seconds"] + txt["seconds"]})
    chosen = pick_fastest(tried, ctx.config.quantize.max_accuracy_drop)
    for role in ctx.config.roles:
        (tmp / role).mkdir(exist_ok=True)
        shutil.copyfile(ok[(role, chosen[role])]["path"], tmp / role / "model.onnx")
    return {"fp32_top1": baseline, "max_accuracy_drop": ctx.config.quantize.max_accuracy_drop,
            "candidates": tried, "chosen": chosen,
            "failed": {f"{r}:{m}": v["error"] for (r, m), v in variants.items() if "error" in v},
            "chosen_stages": {r: {"quantize": chosen[r], "stages": ok[(r, chosen[r])]["stages"]}
                              for r in ctx.config.roles}}
