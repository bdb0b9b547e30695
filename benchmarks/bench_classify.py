"""Classify N images against 100 labels: HF zero-shot pipeline (PyTorch, one call per image) vs clipforge fp32.

Random-weight ViT-B/32-shaped CLIP, both measured side by side in this run. The pipeline re-encodes every label
prompt for every image; clipforge encodes the labels once and batches the images. Usage:
    python benchmarks/bench_classify.py [--images 200] [--labels 100] [--pipeline-images N]
--pipeline-images times the pipeline on the first N images only and scales its per-image time (it is linear in
N); the printout says when that was done. Predictions are compared on the images both ran.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import b32_checkpoint, b32_export, images, labels


def make_pipeline(folder):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, pipeline

    return pipeline(
        "zero-shot-image-classification",
        model=AutoModel.from_pretrained(folder),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
    )


def run_pipeline(pipe, imgs, label_list):
    start = time.perf_counter()
    top = [pipe(image, candidate_labels=label_list)[0]["label"] for image in imgs]
    return time.perf_counter() - start, top


def run_clipforge(folder, imgs, label_list):
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(folder)  # a fresh model: label embeddings are computed inside the timing
    start = time.perf_counter()
    top = [r[0]["label"] for r in model.classify(imgs, label_list, top_k=1)]
    return time.perf_counter() - start, top


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--pipeline-images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median ratio is reported")
    args = parser.parse_args()
    imgs, label_list = images(args.images), labels(args.labels)
    n_pipe = min(args.pipeline_images or args.images, args.images)
    pipe, export = make_pipeline(b32_checkpoint()), b32_export()
    ratios, hf_times, cf_times = [], [], []
    for _ in range(args.repeats):
        cf_seconds, cf_top = run_clipforge(export, imgs, label_list)
        hf_seconds, hf_top = run_pipeline(pipe, imgs[:n_pipe], label_list)
        hf_times.append(hf_seconds / n_pipe)
        cf_times.append(cf_seconds / args.images)
        ratios.append(hf_times[-1] / cf_times[-1])
    agree = sum(a == b for a, b in zip(hf_top, cf_top)) / n_pipe
    result = {
        "images": args.images,
        "labels": len(label_list),
        "pipeline_images_timed": n_pipe,
        "hf_pipeline_s_per_image": statistics.median(hf_times),
        "clipforge_s_per_image": statistics.median(cf_times),
        "speedups": ratios,
        "speedup": statistics.median(ratios),
        "top1_agreement": agree,
    }
    print(json.dumps(result, indent=2))
    scaled = " (pipeline timed on a subset, per-image time scaled)" if n_pipe < args.images else ""
    print(
        f"clipforge fp32 is {result['speedup']:.1f}x (median of {args.repeats}) the HF pipeline loop at "
        f"N={args.images}{scaled}; top-1 agreement {agree:.3f}"
    )


if __name__ == "__main__":
    main()
