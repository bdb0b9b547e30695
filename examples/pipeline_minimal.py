"""Zero-shot image classification with clipforge's pipeline graphs and nothing but onnxruntime,
onnxruntime-extensions and numpy (no clipforge, torch or transformers).

    clipforge export-pipeline openai/clip-vit-base-patch32 -o clip      # once, where clipforge is installed
    pip install onnxruntime onnxruntime-extensions numpy                 # wherever this script runs
    python pipeline_minimal.py clip photo.jpg "a cat" "a dog" "a car"
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime_extensions import get_library_path


def session(path):
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())  # DecodeImage, tokenizers, string ops
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main(prefix, image_path, labels):
    image_model, text_model = session(f"{prefix}_img.onnx"), session(f"{prefix}_txt.onnx")
    with open(image_path, "rb") as f:
        encoded = np.frombuffer(f.read(), dtype=np.uint8)  # PNG or JPEG bytes, decoded in the graph
    image = image_model.run(None, {"image": encoded})[0]  # [1, D], L2-normalised
    prompts = np.array([f"a photo of {label}." for label in labels], dtype=object)
    texts = text_model.run(None, {"text": prompts})[0]  # [N, D], L2-normalised

    meta = text_model.get_modelmeta().custom_metadata_map  # logit scale (and SigLIP's bias) travel in metadata
    logits = json.loads(meta["logit_scale"]) * image @ texts.T
    if json.loads(meta["logit_bias"]) is None:  # CLIP: softmax over the labels
        scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    else:  # SigLIP: an independent sigmoid per label
        scores = 1 / (1 + np.exp(-(logits + json.loads(meta["logit_bias"]))))
    for label, score in sorted(zip(labels, scores[0]), key=lambda pair: -pair[1]):
        print(f"{score:.4f}  {label}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
