"""Where the time goes in each build, per op type (onnxruntime's profiler), random-weight ViT-B/32-shaped CLIP.

For every build folder given (default: the fp32, int8-dynamic and int8-static builds of bench_encoders) and each
encoder: the share of kernel time per op type and which ops still compute in float. Image batch 16, text 100
prompts padded to the longest; ``--runs`` profiled runs after one warm-up.
    python benchmarks/int8_profile.py [--runs 3] [FOLDER or image-encoder model.onnx ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

from _common import WORK, images, labels

FLOAT_COMPUTE = {"MatMul", "Gemm", "Conv", "FusedMatMul", "Attention", "MultiHeadAttention", "Softmax"}


def profile(model_path: Path, feed: dict, runs: int) -> dict[str, float]:
    """Kernel microseconds per op type, summed over ``runs`` runs (after one un-profiled warm-up)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    feed = {i.name: feed[i.name] for i in session.get_inputs()}
    for _ in range(runs + 1):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_op = collections.Counter()
    runs_seen = 0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            runs_seen += 1
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    first_run = _first_run_share(events)  # drop the warm-up run's share
    return {op: us * (1 - first_run) for op, us in per_op.items()}


def _first_run_share(events: list) -> float:
    runs = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    return runs[0] / sum(runs) if runs else 0.0


def print_split(name: str, per_op: dict[str, float], runs: int) -> None:
    total = sum(per_op.values())
    floaty = sum(v for k, v in per_op.items() if k in FLOAT_COMPUTE)
    print(
        f"\n{name}: {total / runs / 1e3:.1f} ms per run in kernels; float matmul-class ops "
        f"({', '.join(sorted(k for k in per_op if k in FLOAT_COMPUTE))}) {100 * floaty / total:.1f}%"
    )
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {op:28} {100 * us / total:5.1f}%  {us / runs / 1e3:7.1f} ms")


def feeds():
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(WORK / "clip-b32-none", backend="onnxruntime")
    tokens = model.tokenizer.encode([f"a photo of a {x}." for x in labels(100)])
    return {
        "pixel_values": model.preprocess(images(16)),
        "input_ids": tokens.input_ids,
        "attention_mask": tokens.attention_mask,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--roles", default="image-encoder,text-encoder")
    args = parser.parse_args()
    from clipforge.specs import Manifest

    folders = [Path(f) for f in args.folders] or [
        WORK / f"clip-b32-{m}" for m in ("none", "int8-dynamic", "int8-static")
    ]
    feed, result = feeds(), {}
    for folder in folders:
        if folder.suffix == ".onnx":  # a bare image-encoder graph (e.g. from int8_variants.py)
            targets = {"image-encoder": folder}
        else:
            targets = {r: folder / p for r, p in Manifest.load(folder).encoders.items()}
        for role in args.roles.split(","):
            if role in targets:
                per_op = profile(targets[role], feed, args.runs)
                result[f"{folder.name} {role}"] = per_op
                print_split(f"{folder.name} {role}", per_op, args.runs)
    print(json.dumps({k: {op: round(v / args.runs / 1e3, 2) for op, v in d.items()} for k, d in result.items()}))


if __name__ == "__main__":
    main()
