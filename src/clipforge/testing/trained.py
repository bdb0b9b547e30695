"""A tiny CLIP / SigLIP trained in about a minute on the coloured-shapes set, so zero-shot accuracy checks (eval,
quantisation) mean something offline. Saved as normal HF checkpoint folders.

    python -m clipforge.testing.trained --out DIR

Training is contrastive on captions built from ``corpus.TEMPLATES`` ("a photo of a red circle."): symmetric InfoNCE
for CLIP, the pairwise sigmoid loss for SigLIP. The multilingual fixture (family ``metaclip2``: a MetaCLIP 2-style
``MetaClip2Model`` with an XLM-R-style Unigram tokenizer trained on English, German and Spanish) learns from
``multilingual.captions()`` (the same classes captioned in the three languages) with CLIP's loss. A batch holds
``per_class`` images and ``captions`` captions of every class; pairs of the same class count as positives (several
images share a class, so treating them as negatives would fight the objective). Images go through the checkpoint's
own HF image processor once; each batch then gets a random horizontal flip and a small shift.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from clipforge._context import temporarily
from clipforge.testing import multilingual
from clipforge.testing.checkpoints import save_tiny_checkpoint
from clipforge.testing.corpus import TEMPLATES
from clipforge.testing.shapes import GENERATOR_VERSION, ShapesDataset, cached_folder, shapes_dataset

RECIPE_VERSION = 4  # 4: deterministic CLIP tokenizer (testing.tokenizers)
ENCODER_CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
_COMMON = {"seed": 0, "image_size": 32, "threads": 1, "shift": 3, "per_class": 4}
RECIPES = {  # steps: optimiser steps; per_class / captions: images / captions of every class in a batch
    "clip": {**_COMMON, "steps": 1000, "captions": 2, "lr": 4e-3},
    "siglip": {**_COMMON, "steps": 1200, "captions": 1, "lr": 3e-3},
    "metaclip2": {**_COMMON, "steps": 1500, "captions": 3, "lr": 4e-3},
}
LANGS = multilingual.LANGUAGES
MASKED = ("clip", "metaclip2")  # families whose text tower takes the attention mask (and trains with InfoNCE)
EVAL_TEMPLATE = "a photo of a {}."
TEXT_LENGTH = {"siglip": 64}  # SigLIP pads to its fixed length (no attention mask); CLIP pads to the longest


def torch_threads(n: int):
    """Run with ``n`` intra-op threads, restoring the previous count (fixtures share the pytest process).

    Tiny models gain nothing from more threads, and spinning OpenMP workers are many times slower than one
    thread when the cores are shared with other processes.
    """
    import torch

    return temporarily(torch.get_num_threads, torch.set_num_threads, n)


def split_files(dataset: ShapesDataset, split: str) -> list[tuple[Path, int]]:
    """``(path, label)`` for every image of ``split``, in class order then file-name order."""
    folders = [dataset.folder(split) / c for c in dataset.class_names]
    return [(p, label) for label, f in enumerate(folders) for p in sorted(f.iterdir())]


def load_split(folder: Path, dataset: ShapesDataset, split: str):
    """All images of a split processed by the checkpoint's own HF image processor, and their labels."""
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    files = split_files(dataset, split)
    images = [Image.open(p).convert("RGB") for p, _ in files]
    return processor(images=images, return_tensors="pt")["pixel_values"], np.array([label for _, label in files])


def tokenize(tokenizer, family: str, texts: list[str]) -> dict:
    """Model inputs for ``texts``: ``input_ids`` (+ ``attention_mask`` for CLIP)."""
    length = TEXT_LENGTH.get(family)
    kwargs = {"padding": "max_length", "max_length": length} if length else {"padding": True}
    enc = tokenizer(texts, truncation=True, return_tensors="pt", **kwargs)
    return {k: enc[k] for k in ("input_ids", "attention_mask") if k in enc and (k == "input_ids" or family in MASKED)}


def captions(family: str, names: list[str]) -> list[list[str]]:
    """``[caption][class]``: the English templates filled with the class names, or the multilingual captions."""
    if family == "metaclip2":
        return multilingual.captions()
    return [[t.format(n) for n in names] for t in TEMPLATES]


def _caption_bank(tokenizer, family: str, names: list[str]) -> dict:
    """Every (caption, class) caption tokenized once: tensors of shape [captions, classes, length]."""
    rows = captions(family, names)
    texts = [c for row in rows for c in row]
    return {k: v.reshape(len(rows), len(names), -1) for k, v in tokenize(tokenizer, family, texts).items()}


def _loss(model, family: str, img, txt, img_labels, txt_labels):
    """Symmetric InfoNCE (CLIP) or pairwise sigmoid loss (SigLIP); same-class pairs are positives."""
    import torch.nn.functional as F

    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = model.logit_scale.exp() * img @ txt.T
    positive = (img_labels[:, None] == txt_labels[None, :]).float()
    if family in MASKED:
        to_text = -(F.log_softmax(logits, 1) * positive / positive.sum(1, keepdim=True)).sum(1).mean()
        to_image = -(F.log_softmax(logits, 0) * positive / positive.sum(0, keepdim=True)).sum(0).mean()
        return (to_text + to_image) / 2
    return -F.logsigmoid((2 * positive - 1) * (logits + model.logit_bias)).sum() / len(img)


def _batch(rng: np.random.Generator, by_class: list[np.ndarray], bank: dict, recipe: dict):
    """``per_class`` random images and ``captions`` random-template captions of every class, with labels."""
    import torch

    image_labels = np.repeat(np.arange(len(by_class)), recipe["per_class"])
    images = np.array([rng.choice(by_class[c]) for c in image_labels])
    text_labels = np.repeat(np.arange(len(by_class)), recipe["captions"])
    rows = len(bank["input_ids"])
    text = {k: v[rng.integers(rows, size=len(text_labels)), text_labels] for k, v in bank.items()}
    if "attention_mask" in text:  # trim the padding that no caption of this batch needs
        keep = int(text["attention_mask"].sum(1).max())
        text = {k: v[:, :keep] for k, v in text.items()}
    return images, text, torch.as_tensor(image_labels), torch.as_tensor(text_labels)


def augment(pixels, rng: np.random.Generator, shift: int):
    """Label-preserving jitter of processed images: random horizontal flip and a shift of up to ``shift`` px."""
    import torch
    import torch.nn.functional as F

    flip = torch.as_tensor(rng.random(len(pixels)) < 0.5)
    pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
    if not shift:
        return pixels
    size = pixels.shape[-1]
    padded = F.pad(pixels, (shift,) * 4, mode="replicate")
    dx, dy = rng.integers(0, 2 * shift + 1, (2, len(pixels)))
    return torch.stack([p[:, y : y + size, x : x + size] for p, x, y in zip(padded, dx, dy)])


def _init_siglip_logits(model) -> None:
    """The SigLIP paper's initialisation: temperature 10, bias -10."""
    import torch

    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(10.0)))
        model.logit_bias.fill_(-10.0)


def train(model, family: str, tokenizer, pixels, labels, names: list[str]) -> None:
    """Fit ``model`` in place with the family's recipe (AdamW, one-cycle schedule)."""
    import torch

    recipe = RECIPES[family]
    if family == "siglip":
        _init_siglip_logits(model)
    rng = np.random.default_rng(recipe["seed"])
    bank = _caption_bank(tokenizer, family, names)
    by_class = [np.flatnonzero(labels == c) for c in range(len(names))]
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=recipe["steps"], pct_start=0.1)
    model.train()
    for _ in range(recipe["steps"]):
        images, text, image_labels, text_labels = _batch(rng, by_class, bank, recipe)
        img = model.get_image_features(pixel_values=augment(pixels[images], rng, recipe["shift"])).pooler_output
        txt = model.get_text_features(**text).pooler_output
        loss = _loss(model, family, img, txt, image_labels, text_labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()


def zero_shot_top1(
    folder: Path, family: str, dataset: ShapesDataset, split: str = "test", prompts: list[str] | None = None
) -> float:
    """Top-1 of zero-shot classification with ``prompts`` (one per class; default ``EVAL_TEMPLATE`` filled with
    the class names), with transformers only."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pixels, labels = load_split(folder, dataset, split)
    prompts = prompts or [EVAL_TEMPLATE.format(c) for c in dataset.class_names]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels).pooler_output
        txt = model.get_text_features(**tokenize(tokenizer, family, prompts)).pooler_output
    return float(((img @ txt.T).argmax(1).numpy() == labels).mean())


def train_checkpoint(family: str, dataset: ShapesDataset, out: Path) -> dict:
    """Save a tiny checkpoint of ``family`` to ``out``, train it there, and measure it on the test split."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    recipe = RECIPES[family]
    extra = {"tokenizer_texts": multilingual.training_corpus()} if family == "metaclip2" else {}
    save_tiny_checkpoint(family, out, image_size=recipe["image_size"], encoder_config=ENCODER_CONFIG, **extra)
    with torch_threads(recipe["threads"]):
        torch.manual_seed(recipe["seed"])
        model = AutoModel.from_pretrained(out, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(out)
        pixels, labels = load_split(out, dataset, "train")
        start = time.perf_counter()
        train(model, family, tokenizer, pixels, labels, dataset.class_names)
        seconds = time.perf_counter() - start
        model.save_pretrained(str(out))
        top1 = zero_shot_top1(out, family, dataset)
        by_language = (
            {lang: zero_shot_top1(out, family, dataset, prompts=multilingual.class_labels(lang)) for lang in LANGS}
            if family == "metaclip2"
            else {}
        )
    return {"family": family, "train_seconds": seconds, "test_top1": top1, "test_top1_by_language": by_language}


def checkpoint_key(family: str) -> str:
    return f"trained-{family}-g{GENERATOR_VERSION}-r{RECIPE_VERSION}"


def trained_checkpoint(family: str, cache_root: str | Path | None = None) -> Path:
    """The trained checkpoint folder, built once and cached under a key of generator, recipe and family."""
    return cached_folder(
        cache_root,
        checkpoint_key(family),
        "model.safetensors",
        lambda dataset, tmp: train_checkpoint(family, dataset, tmp),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the dataset and the checkpoints")
    parser.add_argument("--family", choices=sorted(RECIPES), action="append", help="default: all")
    args = parser.parse_args(argv)
    dataset = shapes_dataset(args.out)
    print(
        f"dataset {dataset.root}: {len(dataset.class_names)} classes (chance {100 / len(dataset.class_names):.0f}%)"
        f"; CPU load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for family in args.family or list(RECIPES):
        out = args.out / checkpoint_key(family)
        shutil.rmtree(out, ignore_errors=True)
        stats = train_checkpoint(family, dataset, out)
        print(
            f"{family}: trained in {stats['train_seconds']:.1f} s ({RECIPES[family]['threads']} thread), "
            f"test zero-shot top-1 {100 * stats['test_top1']:.1f}% -> {out}"
        )
        for lang, top1 in stats["test_top1_by_language"].items():
            print(f"  labels in {lang}: test zero-shot top-1 {100 * top1:.1f}%")


if __name__ == "__main__":
    main()
