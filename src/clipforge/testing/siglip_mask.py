"""Measure a SigLIP export against transformers' ``SiglipModel`` run with and without the text attention mask.

transformers 5's ``SiglipTokenizer`` returns ``attention_mask`` (transformers 4 returned ``input_ids`` only) and
``SiglipModel`` applies it; SigLIP was trained with no text mask. These helpers run HF's zero-shot pipeline as a
user would, on the PyTorch model and on a clipforge export, with a tokenizer that returns the mask (``mask=True``,
transformers 5's default) or not (``mask=False``, transformers 4 and the trained model), and report the largest
score difference and the lowest text-embedding cosine. Used by ``tests/test_siglip_mask.py`` and
``benchmarks/siglip_mask.py``; torch and transformers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipforge.export.validate import cosine_rows
from clipforge.runtime.model import ZeroShotModel

# short labels (much padding in SigLIP's fixed 64-token texts) and one long one
LABELS = ["cat", "a dog", "red circle", "blue square", "two people riding bicycles along a river in the city at night"]
TEMPLATE = "This is a photo of {}."  # the zero-shot pipeline's default hypothesis template


def hf_tokenizer(folder: str | Path, mask: bool):
    """The checkpoint's tokenizer returning ``attention_mask`` (as transformers 5 saves SigLIP's) or not."""
    from transformers import AutoTokenizer

    names = ["input_ids", "attention_mask"] if mask else ["input_ids"]
    return AutoTokenizer.from_pretrained(str(folder), model_input_names=names)


def hf_pipeline(model, folder: str | Path, mask: bool):
    """``transformers.pipeline("zero-shot-image-classification", ...)`` over ``model`` (PyTorch or clipforge)."""
    from transformers import AutoImageProcessor, pipeline

    return pipeline(
        "zero-shot-image-classification",
        model=model,
        tokenizer=hf_tokenizer(folder, mask),
        image_processor=AutoImageProcessor.from_pretrained(str(folder)),
    )


def score_diff(want_pipe, got_pipe, images: list, labels: list[str] = LABELS) -> float:
    """Largest |score difference| of any label on any image between two pipelines."""
    worst = 0.0
    for image in images:
        want = {r["label"]: r["score"] for r in want_pipe(image, candidate_labels=labels)}
        got = {r["label"]: r["score"] for r in got_pipe(image, candidate_labels=labels)}
        worst = max(worst, max(abs(got[label] - want[label]) for label in labels))
    return worst


def text_cosines(torch_model, onnx_model, folder: str | Path, mask: bool, labels: list[str] = LABELS) -> np.ndarray:
    """Per prompt, the cosine between the PyTorch and clipforge text embeddings of the pipeline's prompts, both
    models given the same tokenizer outputs (``model(**inputs)``)."""
    import torch

    texts = [TEMPLATE.format(label) for label in labels]
    inputs = hf_tokenizer(folder, mask)(texts, padding="max_length", truncation=True, return_tensors="pt")
    with torch.no_grad():
        want = torch_model.get_text_features(**inputs).pooler_output.numpy()
    got = onnx_model(**inputs).text_embeds
    return cosine_rows(np.asarray(got), want)


def measure(checkpoint: str | Path, exported: str | Path, mask: bool, images: list) -> dict:
    """``max_score_diff`` and ``min_text_cosine`` of ``exported`` against the PyTorch ``checkpoint`` through HF's
    zero-shot pipeline, both fed by a tokenizer that returns the mask (``mask``) or not."""
    from transformers import AutoModel

    torch_model, onnx_model = AutoModel.from_pretrained(str(checkpoint)).eval(), ZeroShotModel.from_onnx(exported)
    diff = score_diff(hf_pipeline(torch_model, checkpoint, mask), hf_pipeline(onnx_model, checkpoint, mask), images)
    cosine = float(text_cosines(torch_model, onnx_model, checkpoint, mask).min())
    return {"max_score_diff": diff, "min_text_cosine": cosine}


def sample_images(n: int = 3, seed: int = 0) -> list:
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (30 + 11 * i, 45, 3), dtype=np.uint8)) for i in range(n)]
