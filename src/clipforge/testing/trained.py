"""A tiny CLIP / SigLIP trained in about a minute on the coloured-shapes set, so zero-shot accuracy checks
(eval, quantisation) mean something offline. Saved as normal HF checkpoint folders.

    python -m clipforge.testing.trained --out DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from clipforge.testing.corpus import TEMPLATES
from clipforge.testing.shapes import GENERATOR_VERSION, ShapesDataset, fixture_root, shapes_dataset

RECIPE_VERSION = 2
TOWER = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
RECIPE = {"steps": 3000, "lr": 2e-3, "seed": 0, "image_size": 32}
FAMILY_RECIPE = {"clip": {}, "siglip": {"steps": 4000, "lr": 3e-3}}
EVAL_TEMPLATE = "a photo of a {}."


def _load_split(folder: Path, dataset: ShapesDataset, split: str):
    """All images of a split, processed by the checkpoint's own HF image processor, and their labels."""
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(folder)
    files = [(p, i) for i, c in enumerate(dataset.class_names) for p in sorted((dataset.folder(split) / c).iterdir())]
    pixels = processor(images=[Image.open(p).convert("RGB") for p, _ in files], return_tensors="pt")["pixel_values"]
    return pixels, np.array([label for _, label in files])


def _captions(tokenizer, family: str, texts: list[str]):
    kwargs = {"padding": "max_length", "max_length": 64} if family == "siglip" else {"padding": True}
    enc = tokenizer(texts, truncation=True, return_tensors="pt", **kwargs)
    return {"input_ids": enc["input_ids"], **({"attention_mask": enc["attention_mask"]} if family == "clip" else {})}


def _loss(model, family: str, img, txt):
    import torch
    import torch.nn.functional as F

    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = model.logit_scale.exp() * img @ txt.T
    if family == "clip":
        target = torch.arange(len(img))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    labels = 2 * torch.eye(len(img)) - 1
    return -F.logsigmoid(labels * (logits + model.logit_bias)).sum() / len(img)


def _train(model, family, tokenizer, pixels, labels, names: list[str]) -> None:
    import torch

    recipe = {**RECIPE, **FAMILY_RECIPE[family]}
    n_classes = len(names)
    if family == "siglip":  # the SigLIP paper's initialisation: t = 10, b = -10
        with torch.no_grad():
            model.logit_scale.fill_(float(np.log(10.0)))
            model.logit_bias.fill_(-10.0)
    rng = np.random.default_rng(recipe["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=recipe["steps"], pct_start=0.1)
    by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
    model.train()
    for _ in range(recipe["steps"]):
        idx = [int(rng.choice(group)) for group in by_class]  # one image per class: a clean InfoNCE batch
        texts = [TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(names[c]) for c in range(n_classes)]
        img = model.get_image_features(pixel_values=pixels[idx]).pooler_output
        txt = model.get_text_features(**_captions(tokenizer, family, texts)).pooler_output
        loss = _loss(model, family, img, txt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()


def zero_shot_top1(folder: Path, family: str, dataset: ShapesDataset, split: str = "test") -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pixels, labels = _load_split(folder, dataset, split)
    prompts = [EVAL_TEMPLATE.format(c) for c in dataset.class_names]
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels).pooler_output
        txt = model.get_text_features(**_captions(tokenizer, family, prompts)).pooler_output
    return float(((img @ txt.T).argmax(1).numpy() == labels).mean())


def train_checkpoint(family: str, dataset: ShapesDataset, out: Path) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from clipforge.registry import get_family

    torch.manual_seed(RECIPE["seed"])
    torch.set_num_threads(2)
    get_family(family).save_tiny_checkpoint(out, image_size=RECIPE["image_size"], tower=TOWER)
    model = AutoModel.from_pretrained(out, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(out)
    pixels, labels = _load_split(out, dataset, "train")
    start = time.perf_counter()
    _train(model, family, tokenizer, pixels, labels, dataset.class_names)
    seconds = time.perf_counter() - start
    model.save_pretrained(str(out))
    return {"family": family, "train_seconds": seconds, "test_top1": zero_shot_top1(out, family, dataset)}


def trained_checkpoint(family: str, cache_root: str | Path | None = None) -> Path:
    """The trained checkpoint folder, built once and cached (keyed by generator and recipe versions)."""
    root = fixture_root(cache_root)
    folder = root / f"trained-{family}-g{GENERATOR_VERSION}-r{RECIPE_VERSION}"
    if (folder / "model.safetensors").is_file():
        return folder
    dataset = shapes_dataset(cache_root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=root))
    try:
        train_checkpoint(family, dataset, tmp)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dataset = shapes_dataset(args.out)
    for family in ("clip", "siglip"):
        stats = train_checkpoint(family, dataset, args.out / f"trained-{family}")
        print(f"{family}: trained in {stats['train_seconds']:.1f} s, test zero-shot top-1 "
              f"{100 * stats['test_top1']:.1f}% over {len(dataset.class_names)} classes")


if __name__ == "__main__":
    main()
