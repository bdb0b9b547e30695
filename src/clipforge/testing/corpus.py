"""Text the tiny tokenizers are trained on: prompt templates, shape/colour captions and plain English."""

from __future__ import annotations

import itertools

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "pink", "brown", "cyan", "grey"]
SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "diamond", "heart", "hexagon", "line"]
NOUNS = [
    "cat",
    "dog",
    "car",
    "house",
    "tree",
    "person",
    "bird",
    "plane",
    "boat",
    "horse",
    "apple",
    "flower",
    "truck",
    "ship",
    "frog",
    "deer",
    "chair",
    "table",
    "bicycle",
    "mountain",
    "river",
    "city",
    "street",
    "food",
]
TEMPLATES = [
    "a photo of a {}.",
    "This is a photo of {}.",
    "a blurry photo of the {}.",
    "a close-up photo of a {}.",
    "a drawing of a {}",
    "itap of my {}.",
    "a bright photo of the {}!",
    "a {} on a plain background",
    "there is a {} in the picture",
    "A picture showing the {}, seen from far away.",
]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Zero-shot classification ranks labels by cosine similarity between embeddings.",
    "Images and texts are encoded into one shared space; similar things end up close together.",
    "It's 3 o'clock and we're leaving, aren't we? I'll be there by 5pm.",
    "Numbers like 1234, 56.7% and 8x10 appear in captions too.",
    "Café, naïve, résumé — unicode words and emoji 🙂 should still tokenize.",
    "ONNX Runtime runs the exported encoders on CPUs, GPUs and NPUs.",
]


def training_corpus() -> list[str]:
    """A deterministic list of lines (a few thousand) covering every word the fixtures use."""
    labels = [f"{c} {s}" for c, s in itertools.product(COLOURS, SHAPES)] + NOUNS
    lines = [t.format(label) for t in TEMPLATES for label in labels]
    return lines + SENTENCES * 20
