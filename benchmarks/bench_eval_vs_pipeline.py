"""Zero-shot evaluation, 300 images x 100 classes, random-weight ViT-B/32-shaped CLIP, side by side in one run:
(a) the seeds' evaluator loop: HF zero-shot pipeline called once per image (PyTorch model; every call re-encodes
the 100 class prompts), (b) ``clipforge eval``'s path: class texts embedded once, images batched (fp32 export).
Predictions are compared on the images both ran.
    python benchmarks/bench_eval_vs_pipeline.py [--images 300] [--classes 100] [--pipeline-images N]
--pipeline-images times the pipeline on the first N images only and scales its per-image time (it is linear in
the number of images); the printout says so.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import WORK, b32_checkpoint, b32_export, images, labels

TEMPLATE = "This is a photo of {}."


def seeds_loop(imgs, class_names):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, pipeline

    folder = b32_checkpoint()
    pipe = pipeline(
        "zero-shot-image-classification",
        model=AutoModel.from_pretrained(folder),
        tokenizer=AutoTokenizer.from_pretrained(folder),
        image_processor=AutoImageProcessor.from_pretrained(folder),
    )
    start = time.perf_counter()
    preds = [
        class_names.index(pipe(image, candidate_labels=class_names, hypothesis_template=TEMPLATE)[0]["label"])
        for image in imgs
    ]
    return time.perf_counter() - start, preds


def clipforge_eval(imgs, class_names, export):
    from clipforge.data.labelled import EvalData
    from clipforge.evaluation.classify_eval import evaluate_classification
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(export)
    data = EvalData(imgs, [0] * len(imgs), class_names, "synthetic")
    start = time.perf_counter()
    result = evaluate_classification(model, data, [TEMPLATE], show=False)
    return time.perf_counter() - start, result["predictions"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--pipeline-images", type=int, default=None)
    parser.add_argument("--int8", action="store_true", help="also time an int8-dynamic build")
    args = parser.parse_args()
    imgs, class_names = images(args.images), labels(args.classes)
    n_pipe = min(args.pipeline_images or args.images, args.images)
    cf_s, cf_pred = clipforge_eval(imgs, class_names, b32_export())
    hf_s, hf_pred = seeds_loop(imgs[:n_pipe], class_names)
    hf_per, cf_per = hf_s / n_pipe, cf_s / args.images
    result = {
        "images": args.images,
        "classes": len(class_names),
        "pipeline_images_timed": n_pipe,
        "seeds_loop_s_per_image": hf_per,
        "clipforge_eval_s_per_image": cf_per,
        "speedup": hf_per / cf_per,
        "same_predictions": float(np.mean(np.array(hf_pred) == np.array(cf_pred[:n_pipe]))),
    }
    if args.int8:
        from clipforge.builder import build_composite

        folder = build_composite(
            b32_checkpoint(), WORK / "clip-b32-int8-dynamic", quantize="int8-dynamic", show_progress=False
        ).path
        i8_s, i8_pred = clipforge_eval(imgs, class_names, folder)
        result.update(
            {
                "int8_speedup": hf_per / (i8_s / args.images),
                "int8_same_predictions": float(np.mean(np.array(i8_pred[:n_pipe]) == np.array(hf_pred))),
            }
        )
    print(json.dumps(result, indent=2))
    scaled = " (pipeline timed on a subset, per-image time scaled)" if n_pipe < args.images else ""
    print(
        f"clipforge eval fp32 is {result['speedup']:.1f}x the seeds' per-image pipeline loop{scaled}; "
        f"same predictions on {100 * result['same_predictions']:.1f}% of images"
    )


if __name__ == "__main__":
    main()
