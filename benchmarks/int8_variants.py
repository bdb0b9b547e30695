"""int8-static variants of the ViT-B/32-shaped image encoder, side by side in one run with int8-dynamic and fp32
(onnxruntime, batch 16, round-robin medians): per-channel vs per-tensor weights, and QDQ with or without the
Q after each MatMul (without it onnxruntime runs MatMulIntegerToFloat instead of QLinearMatMul + requantise).
Prints img/s and the ratio to int8-dynamic (wall clock and CPU time) and min cosine to fp32 on the
calibration images.
    python benchmarks/int8_variants.py [--calibration 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import WORK, b32_export, images

VARIANTS = {  # name: (kind, per_channel, extra_options)
    "static per-channel, Q after MatMul": ("static", True, {}),
    "static per-tensor, Q after MatMul": ("static", False, {}),
    "static per-channel, float MatMul out": ("static", True, {"OpTypesToExcludeOutputQuantization": ["MatMul"]}),
    "static per-tensor, float MatMul out": ("static", False, {"OpTypesToExcludeOutputQuantization": ["MatMul"]}),
    "static per-channel + attention MatMuls": ("static", True, {"MatMulConstBOnly": False}),
    "dynamic per-tensor": ("dynamic", False, {}),
    "dynamic per-channel + attention MatMuls": ("dynamic", True, {"MatMulConstBOnly": False}),
}


def quantize(pre: Path, out: Path, feeds: list, kind: str, per_channel: bool, extra: dict) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from clipforge.builder.stages import _Reader, last_matmul

    if out.is_file():
        return
    if kind == "dynamic":
        quantize_dynamic(
            str(pre),
            str(out),
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=last_matmul(pre),
            extra_options={"MatMulConstBOnly": True, **extra},
        )
    else:
        quantize_static(
            str(pre),
            str(out),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=last_matmul(pre),
            extra_options={"MatMulConstBOnly": True, **extra},
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant names")
    args = parser.parse_args()
    from clipforge.builder.build_config import QuantizeSection
    from clipforge.builder.stages import _pre_process, quantize_dynamic
    from clipforge.perf.roofline import per_second, round_robin
    from clipforge.runtime.sessions import SessionConfig, make_session

    src = b32_export() / "image-encoder" / "model.onnx"
    work = WORK / "int8-variants"
    work.mkdir(exist_ok=True)
    pre = work / "pre.onnx"
    if not pre.is_file():
        _pre_process(src, pre)
    fp32 = make_session(src, SessionConfig())
    from clipforge.runtime.model import ZeroShotModel

    pixels = ZeroShotModel.from_onnx(b32_export(), backend="onnxruntime").preprocess(images(args.calibration, 3))
    feeds = [{"pixel_values": pixels[i : i + 8]} for i in range(0, len(pixels), 8)]
    paths = {"fp32": src, "int8-dynamic": work / "dynamic.onnx"}
    if not paths["int8-dynamic"].is_file():
        quantize_dynamic(src, paths["int8-dynamic"], QuantizeSection(), work)
    wanted = [o for o in args.only.split(",") if o]
    for i, (name, (kind, per_channel, extra)) in enumerate(VARIANTS.items()):
        if wanted and not any(o in name for o in wanted):
            continue
        paths[name] = work / f"{kind}{i}.onnx"
        quantize(pre, paths[name], feeds, kind, per_channel, extra)
    batch = np.concatenate([pixels, pixels])[:16]
    ref = fp32.run(None, {"pixel_values": batch})[0]
    sessions = {name: make_session(p, SessionConfig()) for name, p in paths.items()}
    medians = round_robin(
        {n: (lambda s=s: s.run(None, {"pixel_values": batch})) for n, s in sessions.items()}, args.repeats
    )
    rows = {}
    for name, s in sessions.items():
        out = s.run(None, {"pixel_values": batch})[0]
        cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
        rows[name] = {"min_cosine": round(float(cos.min()), 5)}
        for clock, seconds in medians.items():
            rows[name][f"img_per_s_{clock}"] = round(per_second(16, seconds[name], clock), 2)
            rows[name][f"x_dynamic_{clock}"] = round(seconds["int8-dynamic"] / seconds[name], 2)
        r = rows[name]
        print(
            f"{name:42} wall {r['img_per_s_wall']:6.2f} img/s x{r['x_dynamic_wall']:.2f} dynamic | cpu-time "
            f"{r['img_per_s_cpu']:6.2f} img/s x{r['x_dynamic_cpu']:.2f} | min cos {r['min_cosine']}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
