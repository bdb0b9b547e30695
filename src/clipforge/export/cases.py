"""Real inputs for export and validation: processed images of several batch sizes, tokenized prompts of
several lengths. Built with the checkpoint's own HF processor and tokenizer (export side only)."""

from __future__ import annotations

import numpy as np

VALIDATION_PROMPTS = [
    "a photo of a cat.",
    "This is a photo of a red circle on a plain blue background, seen from far away.",
    "dog",
    "Two people riding bicycles along a river in the city at night!",
]


def random_images(n: int, seed: int) -> list:
    """``n`` deterministic images of different sizes and aspect ratios."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(64, 48), (40, 90), (120, 120), (33, 57)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def image_cases(processor, batch_sizes: list[int], size: tuple[int, int] | None = None) -> list[dict]:
    """Processed random images; at a non-native ``size`` (interpolated export), normalised noise instead."""
    cases = []
    for i, b in enumerate(batch_sizes):
        if size:
            pixels = np.random.default_rng(i).standard_normal((b, 3, *size))
        else:
            pixels = processor(images=random_images(b, seed=i), return_tensors="np")["pixel_values"]
        cases.append({"pixel_values": pixels.astype(np.float32)})
    return cases


# NaFlex validation: every budget gets one batch mixing the three aspect ratios (width:height 1:1, 3:1, 1:4; each
# padded to the budget differently) and a batch of one; sizes (height, width)
NAFLEX_BUDGETS = (64, 256)
NAFLEX_ASPECTS = ((96, 96), (40, 120), (160, 40))
NAFLEX_INPUTS = ("pixel_values", "pixel_attention_mask", "spatial_shapes")


def naflex_image_cases(processor, budgets) -> list[dict]:
    """The processor's own output at each patch budget (``max_num_patches``) for the mixed-aspect batch and a
    batch of one; masks and grid shapes as int64, as the graph takes them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    mixed = [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for size in NAFLEX_ASPECTS]
    cases = []
    for budget in budgets:
        for images in (mixed[1:2], mixed):
            out = processor(images=images, return_tensors="np", max_num_patches=budget)
            case = {name: np.asarray(out[name]) for name in NAFLEX_INPUTS}
            cases.append({k: v.astype(np.float32 if k == "pixel_values" else np.int64) for k, v in case.items()})
    return cases


def tokenize(tokenizer, texts: list[str], text_spec, length: int | None = None) -> dict[str, np.ndarray]:
    """Tokenize like the HF processors do for this family; ``length`` forces a fixed (static) length. Texts are
    lower-cased first where the export lower-cases them (``text_spec.lowercase_texts``: SigLIP 2)."""
    texts = [t.lower() for t in texts] if getattr(text_spec, "lowercase_texts", False) else texts
    if length or text_spec.padding == "max_length":
        kwargs = {"padding": "max_length", "max_length": length or text_spec.context_length}
    else:
        kwargs = {"padding": True, "max_length": text_spec.context_length}
    # the padding mask even where the tokenizer's model_input_names leave it out (SigLIP tokenizers saved by
    # transformers 4): a masked SigLIP export is validated with the mask transformers 5 would pass
    enc = tokenizer(texts, truncation=True, return_tensors="np", return_attention_mask=True, **kwargs)
    ids = enc["input_ids"].astype(np.int64)
    return {"input_ids": ids, "attention_mask": np.asarray(enc["attention_mask"]).astype(np.int64)}


def text_cases(tokenizer, text_spec, batch_sizes: list[int], length: int | None = None) -> list[dict]:
    """One case per batch size, each taking prompts of different lengths."""
    cases = []
    for i, b in enumerate(batch_sizes):
        prompts = [VALIDATION_PROMPTS[(i + j) % len(VALIDATION_PROMPTS)] for j in range(b)]
        cases.append(tokenize(tokenizer, prompts, text_spec, length))
    return cases
