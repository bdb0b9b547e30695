"""Image loading and pre-processing with numpy and Pillow only.

Matches transformers 5's PIL-backend image processors (``CLIPImageProcessorPil``, ``SiglipImageProcessorPil``)
step for step: RGB conversion (transparency composited onto white), PIL resize of the uint8 image, centre crop
(zero-padded when the image is smaller), rescale in float64 then cast to float32, normalise in float32.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipforge.errors import InputError
from clipforge.specs import ImageSpec


def load_image(source) -> Image.Image:
    """A PIL image from a PIL image, a file path or encoded bytes; fully decoded, so a truncated or corrupt
    file fails here (Pillow's LOAD_TRUNCATED_IMAGES is left off) with an error naming it."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = f"<{len(source)} bytes>", io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        name, stream = str(source), source
        if not Path(source).is_file():
            raise InputError(f"image {name} does not exist; check the path")
    else:
        raise InputError(f"cannot read an image from {type(source).__name__}; pass a PIL image, a path or bytes")
    try:
        image = Image.open(stream)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {name} is unreadable or truncated ({exc}); replace or remove it") from exc
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, compositing any transparency onto a white background (as HF's convert_to_rgb)."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_size(height: int, width: int, spec: ImageSpec) -> tuple[int, int]:
    """Target (height, width): exact size, or the short side to ``spec.size`` keeping the aspect ratio."""
    if spec.resize_mode == "exact":
        return spec.size
    target = spec.size[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = target, int(target * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop a HWC array; a smaller image is zero-padded first (HF's offsets)."""
    h, w = array.shape[:2]
    ch, cw = size
    if h < ch or w < cw:
        nh, nw = max(ch, h), max(cw, w)
        padded = np.zeros((nh, nw, array.shape[2]), dtype=array.dtype)
        top_pad, left_pad = -(-(nh - h) // 2), -(-(nw - w) // 2)
        padded[top_pad:top_pad + h, left_pad:left_pad + w] = array
        array, h, w = padded, nh, nw
    top, left = (h - ch) // 2, (w - cw) // 2
    return array[top:top + ch, left:left + cw]


def preprocess_one(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """One image -> float32 CHW array."""
    image = to_rgb(image) if spec.do_convert_rgb else image
    if spec.resize_mode != "none":
        h, w = resize_size(image.height, image.width, spec)
        image = image.resize((w, h), resample=spec.resample)
    array = np.asarray(image)
    array = array[..., None] if array.ndim == 2 else array
    if spec.crop_size:
        array = center_crop(array, spec.crop_size)
    array = (array.astype(np.float64) * spec.rescale_factor).astype(np.float32)
    if spec.do_normalize:
        array = (array - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def preprocess(images: Sequence, spec: ImageSpec) -> np.ndarray:
    """Images (PIL, paths or bytes) -> ``pixel_values`` float32 [N, 3, H, W]."""
    arrays = [preprocess_one(load_image(image), spec) for image in images]
    if not arrays:
        return np.zeros((0, 3, *spec.output_size), np.float32)
    return np.stack(arrays)
