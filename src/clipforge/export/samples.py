"""Inputs that catch a runtime that differs from the reference (data, and one deterministic image maker): tricky
texts (case, punctuation, Unicode normalisation, emoji, CJK, whitespace, literal special tokens, over-long text)
and odd images (tiny, thin, huge aspect ratios, every PIL mode). ``export`` checks every exported folder's
tokenizer and pre-processing on them; the tests use the same ones."""

from __future__ import annotations

import numpy as np

TRICKY_TEXTS = [
    "This is a photo of a red circle.",
    "A PHOTO of a Dog!!!",
    "it's 3 o'clock, we're late; aren't we? (yes) [no] {maybe} #tag @user $5 50% a&b ~x^2 `q` a|b c\\d",
    "Café naïve résumé Ærøskøbing straße İstanbul ǅemal",
    "emoji 🙂🐶🚗 👍🏽 👨‍👩‍👧 and CJK 漢字 かな 한국어 ｶﾞ",
    "  leading and   trailing   whitespace\t\ttabs\nnewlines \r\n nbsp\u00a0ideographic\u3000zero\u200bwidth  ",
    "",
    "   ",
    "!!!...???",
    "ﬁ ligature, full-width ＡＢＣ！ roman Ⅻ, ½, ｕ\u0302 combining e\u0301 A\u030a",
    "“curly quotes” — dashes – and… ellipses «guillemets» ¿qué? ¡sí!",
    "word " * 120,
    "x" * 300,
    "a very long prompt " * 30 + "that ends here.",
    "<|endoftext|> literal special <|startoftext|> tokens",
    "</s> eos first, then <unk> and <pad> and </S> mid-text </s>",
    "text ending in eos </s>",
    "▁underline▁markers ▁ and\u2581 more",
    "byte pieces as text: <0x41> <0xE6><0xBC> [CLS] [SEP] <s> <mask>",
    "\u0000control\u0007chars\u007f\ufeff",
]

# (height, width)
ODD_SIZES = [
    (1, 1),
    (2, 3),
    (7, 5),
    (32, 32),
    (33, 47),
    (224, 224),
    (225, 223),
    (480, 640),
    (1, 300),
    (300, 7),
    (1000, 333),
    (17, 1200),
]
ODD_MODES = ["RGB", "RGBA", "L", "LA", "P", "P+transparency", "PA", "CMYK", "I;16", "I", "F", "1", "YCbCr"]
# modes torchvision's pipeline (open_clip) cannot read as the runtime does: refused there, not compared
DEEP_MODES = ("I;16", "I", "F")


def odd_image(mode: str, size: tuple[int, int], seed: int = 0):
    """A deterministic noise image of PIL ``mode`` ("P+transparency": a palette image with a transparent index)
    and ``size`` (height, width)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    rgba = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16)).convert("I;16")
    if mode in ("I", "F"):
        return Image.fromarray(rng.integers(-100, 600, (h, w)).astype(np.int32 if mode == "I" else np.float32))
    if mode.startswith("P"):
        image = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
        if mode == "P+transparency":
            image.info["transparency"] = 0
        return image.convert("PA") if mode == "PA" else image
    return rgba.convert(mode)


def odd_images(deep_modes: bool = True) -> list:
    """One RGB image per odd size, then one image per mode (``deep_modes=False`` leaves out DEEP_MODES)."""
    images = [odd_image("RGB", size, seed=size[0] + size[1]) for size in ODD_SIZES]
    modes = [m for m in ODD_MODES if deep_modes or m not in DEEP_MODES]
    return images + [odd_image(mode, (45, 61), seed=i) for i, mode in enumerate(modes)]
