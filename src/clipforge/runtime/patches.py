"""SigLIP 2 NaFlex pre-processing after the resize, with numpy only: the patch budget, the patch grid that fits
it, patchification and padding, as transformers 5's ``Siglip2ImageProcessor`` (PIL backend) does them.

``naflex_size`` picks the resize target: both sides scaled by one factor, each rounded up to a multiple of the
patch side (at least one patch), the largest factor whose grid fits ``max_patches`` found by bisection on
the factor (the processor's search, same float steps, so the same sizes). ``to_patches`` turns the normalised
images (HWC float32, each its own size) into a ``Patches`` batch: per image its patches in row-major order, each
patch's pixels row by row with the channels innermost, then zero rows up to the budget; the mask says which rows
are real; ``spatial_shapes`` holds each image's grid (rows, columns)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from clipforge.errors import InputError
from clipforge.specs import ImageSpec

MAX_PATCHES_LIMIT = 16384  # a 2048x2048 image in 16-px patches; more only costs memory (a request may ask)
_SEARCH_EPS = 1e-5  # the processor's bisection: stop when the factor's bracket is narrower than this


def with_max_patches(spec: ImageSpec, max_patches) -> ImageSpec:
    """``spec`` with another patch budget; ``None`` keeps it. Refused in one line for a model whose images are a
    fixed size, and for a budget that is not a whole number in 1..MAX_PATCHES_LIMIT."""
    if max_patches is None:
        return spec
    if not spec.naflex:
        raise InputError(
            f"max_patches={max_patches} applies to SigLIP 2 NaFlex models (a patch budget per image); this model "
            f"takes {spec.output_size[1]}x{spec.output_size[0]} images: leave it out"
        )
    if isinstance(max_patches, bool) or not isinstance(max_patches, int) or not 1 <= max_patches <= MAX_PATCHES_LIMIT:
        raise InputError(f"max_patches={max_patches!r} must be a whole number from 1 to {MAX_PATCHES_LIMIT}")
    return replace(spec, max_patches=max_patches)


def _scaled_side(side: int, scale: float, patch: int) -> int:
    return int(max(patch, math.ceil(side * scale / patch) * patch))


def naflex_size(height: int, width: int, patch: int, max_patches: int) -> tuple[int, int]:
    """(height, width) the image is resized to: multiples of ``patch`` whose grid holds at most ``max_patches``
    (one patch at least per side, so a 1:N image may exceed a budget below N)."""
    low, high = _SEARCH_EPS / 10, 100.0
    while high - low >= _SEARCH_EPS:
        middle = (low + high) / 2
        grid = (_scaled_side(height, middle, patch) / patch) * (_scaled_side(width, middle, patch) / patch)
        if grid <= max_patches:
            low = middle
        else:
            high = middle
    return _scaled_side(height, low, patch), _scaled_side(width, low, patch)


@dataclass
class Patches:
    """A NaFlex image batch: the image encoder's three inputs."""

    pixel_values: np.ndarray  # [B, N, P*P*C] float32
    pixel_attention_mask: np.ndarray  # [B, N] int64, 1 for an image's own patches
    spatial_shapes: np.ndarray  # [B, 2] int64, (rows, columns) of each image's grid

    def __len__(self) -> int:
        return len(self.pixel_values)

    def __getitem__(self, index: slice) -> Patches:
        if not isinstance(index, slice):
            raise TypeError("Patches are sliced (patches[i : i + 1]), not indexed: a batch keeps its batch axis")
        return Patches(self.pixel_values[index], self.pixel_attention_mask[index], self.spatial_shapes[index])

    def feed(self) -> dict[str, np.ndarray]:
        return {
            "pixel_values": self.pixel_values,
            "pixel_attention_mask": self.pixel_attention_mask,
            "spatial_shapes": self.spatial_shapes,
        }

    @classmethod
    def empty(cls, spec: ImageSpec) -> Patches:
        width = spec.patch_size * spec.patch_size * 3
        return cls(
            np.zeros((0, spec.max_patches, width), np.float32),
            np.zeros((0, spec.max_patches), np.int64),
            np.zeros((0, 2), np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[Patches]) -> Patches:
        """One batch of several; batches padded to different budgets are padded to the largest (padding rows
        are masked, so an image's embedding does not depend on them)."""
        longest = max(p.pixel_values.shape[1] for p in parts)
        values = [np.pad(p.pixel_values, ((0, 0), (0, longest - p.pixel_values.shape[1]), (0, 0))) for p in parts]
        masks = [np.pad(p.pixel_attention_mask, ((0, 0), (0, longest - p.pixel_values.shape[1]))) for p in parts]
        return cls(np.concatenate(values), np.concatenate(masks), np.concatenate([p.spatial_shapes for p in parts]))


def to_patches(images: Sequence[np.ndarray], patch: int, max_patches: int) -> Patches:
    """Normalised HWC float32 images (sides multiples of ``patch``) -> a ``Patches`` batch padded to
    ``max_patches`` rows."""
    channels = images[0].shape[2]
    values = np.zeros((len(images), max_patches, patch * patch * channels), np.float32)
    mask = np.zeros((len(images), max_patches), np.int64)
    shapes = np.zeros((len(images), 2), np.int64)
    for i, image in enumerate(images):
        rows, cols = image.shape[0] // patch, image.shape[1] // patch
        if rows * cols > max_patches:
            raise InputError(
                f"a {image.shape[1]}x{image.shape[0]} image needs {rows * cols} patches, over the budget of "
                f"{max_patches}; a side at one patch cannot shrink further: raise max_patches or crop the image"
            )
        grid = image.reshape(rows, patch, cols, patch, channels).transpose(0, 2, 1, 3, 4)
        values[i, : rows * cols] = grid.reshape(rows * cols, -1)
        mask[i, : rows * cols] = 1
        shapes[i] = rows, cols
    return Patches(values, mask, shapes)
