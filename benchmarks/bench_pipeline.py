"""Pipeline graphs vs the Python runtime on a random-weight ViT-B/32: export time, file sizes, fidelity, and
per-call latency side by side in one run (median of interleaved repeats).

    python benchmarks/bench_pipeline.py [--repeats 5] [--json out.json]

Image side: ``PREFIX_img.onnx`` on encoded bytes (decode + resize + crop + normalise + encode in one call) vs
``ZeroShotModel.embed_images`` on the same bytes (Pillow decode + numpy pre-processing + encoder). Text side:
``PREFIX_txt.onnx`` on 20 prompts vs ``ZeroShotModel.embed_texts``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
from _common import WORK, b32_export, images


def _encoded(n: int, fmt: str) -> list[bytes]:
    out = []
    for image in images(n, seed=3):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append(buffer.getvalue())
    return out


def _per_call(fn, items, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append((time.perf_counter() - start) / len(items))
    return times


def main() -> None:
    from clipforge.export.validate import cosine_rows
    from clipforge.pipeline import PipelineModel, export_pipeline
    from clipforge.runtime.model import ZeroShotModel

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    folder = b32_export()
    prefix = WORK / "pipeline" / "b32"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = export_pipeline(folder, prefix, "multimodal_clip", force=True, show_progress=False)
    export_s = time.perf_counter() - start
    pipeline, runtime = PipelineModel.from_prefix(prefix, threads=2), ZeroShotModel.from_onnx(folder, threads=2)

    report = {
        "export_and_validate_s": export_s,
        "validation": result.validation,
        "sizes_mb": {k: p.stat().st_size / 1e6 for k, p in result.paths.items()},
    }
    texts = [f"a photo of a {w}." for w in ("cat", "dog", "red circle", "car", "tree")] * 4
    for fmt in ("PNG", "JPEG"):
        data = _encoded(8, fmt)
        got = np.concatenate([pipeline.embed_image(d) for d in data])
        report[f"cosine_{fmt.lower()}_min"] = float(cosine_rows(got, runtime.embed_images(data)).min())
    data = _encoded(8, "JPEG")
    pipe_t, run_t = [], []
    for _ in range(args.repeats):  # interleaved
        pipe_t += _per_call(pipeline.embed_image, data, 1)
        run_t += _per_call(lambda d: runtime.embed_images([d]), data, 1)
    text_pipe, text_run = [], []
    for _ in range(args.repeats):
        text_pipe += _per_call(pipeline.embed_texts, [texts], 1)
        text_run += _per_call(runtime.embed_texts, [texts], 1)
    report["image_ms"] = {"pipeline": 1e3 * statistics.median(pipe_t), "runtime": 1e3 * statistics.median(run_t)}
    report["text_20_ms"] = {
        "pipeline": 1e3 * statistics.median(text_pipe),
        "runtime": 1e3 * statistics.median(text_run),
    }
    report["text_cosine_min"] = float(cosine_rows(pipeline.embed_texts(texts), runtime.embed_texts(texts)).min())
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
