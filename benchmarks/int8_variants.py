"""int8-static variants of the ViT-B/32-shaped image tower, side by side in one run with int8-dynamic and fp32
(onnxruntime, batch 16, round-robin medians): per-channel vs per-tensor weights, and QDQ with or without the
Q after each MatMul (without it onnxruntime runs MatMulIntegerToFloat instead of QLinearMatMul + requantise).
Prints img/s, ratio to int8-dynamic and min cosine to fp32 on the calibration images.
    python benchmarks/int8_variants.py [--calibration 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import WORK, b32_export, images

VARIANTS = {  # name: (per_channel, extra_options)
    "static per-channel, Q after MatMul": (True, {}),
    "static per-tensor, Q after MatMul": (False, {}),
    "static per-channel, float MatMul out": (True, {"OpTypesToExcludeOutputQuantization": ["MatMul"]}),
    "static per-tensor, float MatMul out": (False, {"OpTypesToExcludeOutputQuantization": ["MatMul"]}),
}


def quantize(pre: Path, out: Path, feeds: list, per_channel: bool, extra: dict) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from clipforge.builder.stages import _Reader, last_matmul

    if not out.is_file():
        quantize_static(str(pre), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=last_matmul(pre), extra_options={"MatMulConstBOnly": True, **extra})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu-time", action="store_true", help="rank by CPU time (a shared machine)")
    args = parser.parse_args()
    from clipforge.builder.config import QuantizeSection
    from clipforge.builder.stages import _pre_process, quantize_dynamic
    from clipforge.perf.roofline import round_robin
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
    feeds = [{"pixel_values": pixels[i:i + 8]} for i in range(0, len(pixels), 8)]
    paths = {"fp32": src, "int8-dynamic": work / "dynamic.onnx"}
    if not paths["int8-dynamic"].is_file():
        quantize_dynamic(src, paths["int8-dynamic"], QuantizeSection(), work)
    for i, (name, (per_channel, extra)) in enumerate(VARIANTS.items()):
        paths[name] = work / f"static{i}.onnx"
        quantize(pre, paths[name], feeds, per_channel, extra)
    batch = np.concatenate([pixels, pixels])[:16]
    ref = fp32.run(None, {"pixel_values": batch})[0]
    sessions = {name: make_session(p, SessionConfig()) for name, p in paths.items()}
    seconds = round_robin({n: (lambda s=s: s.run(None, {"pixel_values": batch})) for n, s in sessions.items()},
                          args.repeats)["cpu" if args.cpu_time else "wall"]
    rows = {}
    for name, s in sessions.items():
        out = s.run(None, {"pixel_values": batch})[0]
        cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
        rows[name] = {"img_per_s": round(16 / seconds[name], 2), "x_dynamic": round(seconds["int8-dynamic"] /
                      seconds[name], 2), "min_cosine": round(float(cos.min()), 5)}
        print(f"{name:40} {rows[name]['img_per_s']:7.2f} img/s  x{rows[name]['x_dynamic']:.2f} dynamic  "
              f"min cos {rows[name]['min_cosine']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
