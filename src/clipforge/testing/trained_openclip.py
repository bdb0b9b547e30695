"""A tiny open_clip ModifiedResNet CLIP trained on the coloured-shapes set, saved in open_clip's hub layout, so
int8 accuracy is checked on a ResNet image encoder (Conv layers, attention pooling) too.

    python -m clipforge.testing.trained_openclip --out DIR

Same recipe as ``testing.trained`` (symmetric InfoNCE, same-class pairs positive, flip + shift jitter), with
open_clip's own transform for the images and open_clip's tokenizer (texts padded to 77) for the captions.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from clipforge.families.openclip_io import import_open_clip
from clipforge.testing.corpus import TEMPLATES
from clipforge.testing.shapes import GENERATOR_VERSION, ShapesDataset, cached_folder, shapes_dataset
from clipforge.testing.tiny_openclip import random_model, save_hub_layout
from clipforge.testing.trained import EVAL_TEMPLATE, _loss, augment, split_files, torch_threads

RECIPE_VERSION = 2  # 2: 32 px images, 500 steps (cheaper on shared cores)
CONFIG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
RECIPE = {"seed": 0, "threads": 1, "shift": 3, "per_class": 4, "captions": 2, "steps": 500, "lr": 3e-3}


def load_split(transform, dataset: ShapesDataset, split: str):
    import torch
    from PIL import Image

    files = split_files(dataset, split)
    pixels = torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in files])
    return pixels, np.array([label for _, label in files])


def _train(model, tokenizer, pixels, labels, names: list[str]) -> None:
    import torch

    rng = np.random.default_rng(RECIPE["seed"])
    bank = tokenizer([t.format(n) for t in TEMPLATES for n in names]).reshape(len(TEMPLATES), len(names), -1)
    by_class = [np.flatnonzero(labels == c) for c in range(len(names))]
    opt = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RECIPE["lr"], total_steps=RECIPE["steps"], pct_start=0.1)
    model.train()
    for _ in range(RECIPE["steps"]):
        image_labels = np.repeat(np.arange(len(names)), RECIPE["per_class"])
        images = np.array([rng.choice(by_class[c]) for c in image_labels])
        text_labels = np.repeat(np.arange(len(names)), RECIPE["captions"])
        text = bank[rng.integers(len(TEMPLATES), size=len(text_labels)), text_labels]
        img = model.encode_image(augment(pixels[images], rng, RECIPE["shift"]))
        loss = _loss(
            model, "clip", img, model.encode_text(text), torch.as_tensor(image_labels), torch.as_tensor(text_labels)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()


def zero_shot_top1(folder: Path, dataset: ShapesDataset) -> float:
    """Top-1 of ``EVAL_TEMPLATE`` zero-shot classification, with open_clip only."""
    import torch

    open_clip = import_open_clip()
    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    pixels, labels = load_split(transform, dataset, "test")
    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(tokenizer([EVAL_TEMPLATE.format(c) for c in dataset.class_names]))
    return float(((img @ txt.T).argmax(1).numpy() == labels).mean())


def train_checkpoint(dataset: ShapesDataset, out: Path) -> dict:

    open_clip = import_open_clip()
    with torch_threads(RECIPE["threads"]):
        model = random_model(CONFIG, RECIPE["seed"])
        transform = open_clip.image_transform(CONFIG["vision_cfg"]["image_size"], is_train=False)
        pixels, labels = load_split(transform, dataset, "train")
        start = time.perf_counter()
        _train(model, open_clip.SimpleTokenizer(), pixels, labels, dataset.class_names)
        seconds = time.perf_counter() - start
        save_hub_layout(model, CONFIG, out)
        top1 = zero_shot_top1(out, dataset)
    return {"train_seconds": seconds, "test_top1": top1}


def checkpoint_key() -> str:
    return f"trained-openclip-rn-g{GENERATOR_VERSION}-r{RECIPE_VERSION}"


def trained_resnet(cache_root: str | Path | None = None) -> Path:
    """The trained hub-layout folder, built once and cached under a key of generator and recipe."""
    return cached_folder(cache_root, checkpoint_key(), "open_clip_model.safetensors", train_checkpoint)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    dataset = shapes_dataset(args.out)
    out = args.out / checkpoint_key()
    shutil.rmtree(out, ignore_errors=True)
    stats = train_checkpoint(dataset, out)
    print(
        f"open_clip ResNet: trained in {stats['train_seconds']:.1f} s, test zero-shot top-1 "
        f"{100 * stats['test_top1']:.1f}% -> {out}"
    )


if __name__ == "__main__":
    main()
