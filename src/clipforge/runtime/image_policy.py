"""Which images clipforge accepts: one policy for the library (``ZeroShotModel``), the CLI (``classify``,
``embed``), the indexer and the server, with one error text everywhere.

- Pixel count: a file or request whose header declares more than ``max_pixels`` (width * height) is refused
  before any pixel is decoded, so a small file that declares 100,000x100,000 costs nothing.
- Sides: any image at least ``min_side`` pixels on each side (1 by default: a 1x1 or 7x300 image embeds).
- Frames: an animated GIF, APNG or multi-page TIFF is embedded as its first frame.
- Resized size: the resize before the crop is bounded by ``max_resized_pixels``. Over it, only the window the
  crop keeps is resized (same result: Pillow resamples that window with the full image's filter positions), so
  an 8x4,000,000 strip costs its decoded pixels, not 224x112,000,000 of them. A spec without a crop refuses
  such an image instead.

Defaults are the ``ImagePolicy`` fields; ``CLIPFORGE_MAX_IMAGE_PIXELS``, ``CLIPFORGE_MIN_IMAGE_SIDE`` and
``CLIPFORGE_MAX_RESIZED_PIXELS`` override them (``ImagePolicy.from_env``); the server's ``max_image_pixels`` and
``min_image_side`` settings map onto the first two.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

from PIL import Image

from clipforge.errors import InputError

MAX_PIXELS_ENV = "CLIPFORGE_MAX_IMAGE_PIXELS"
MIN_SIDE_ENV = "CLIPFORGE_MIN_IMAGE_SIDE"
MAX_RESIZED_ENV = "CLIPFORGE_MAX_RESIZED_PIXELS"
_ENV = {"max_pixels": MAX_PIXELS_ENV, "min_side": MIN_SIDE_ENV, "max_resized_pixels": MAX_RESIZED_ENV}
_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")
_STREAM_REPR = re.compile(r"<_io\.\w+ object at 0x[0-9a-fA-F]+>")


class ImageTooLargeError(InputError):
    """An image declares more pixels than the policy allows (the server answers 413)."""


@dataclass(frozen=True)
class ImagePolicy:
    """Limits every entry point applies to an image before and while decoding it."""

    max_pixels: int = 50_000_000  # width * height from the header, checked before decoding
    min_side: int = 1  # smaller images are refused
    max_resized_pixels: int = 16_000_000  # the resize before the crop; beyond it only the kept window is resized

    def __post_init__(self) -> None:
        bad = [
            f"{f.name} must be a positive integer (got {getattr(self, f.name)!r})"
            for f in dataclasses.fields(self)
            if not _positive_int(getattr(self, f.name))
        ]
        if bad:
            raise InputError("bad image policy: " + "; ".join(bad))

    @classmethod
    def from_env(cls, environ=None, **overrides) -> ImagePolicy:
        """The defaults, overridden by the ``CLIPFORGE_*`` variables, then by ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {name: _env_int(env, environ[env]) for name, env in _ENV.items() if environ.get(env)}
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def check_size(self, width: int, height: int, name: str) -> None:
        """Refuse ``name`` (a path, ``input[2]``, ...) when its declared size is over or under the limits."""
        if width * height > self.max_pixels:
            raise ImageTooLargeError(too_large(name, width * height, self.max_pixels, f"{width}x{height} = "))
        if min(width, height) < self.min_side:
            raise InputError(
                f"image {name} is {width}x{height} pixels; images must be at least {self.min_side} "
                f"pixel(s) on each side ({MIN_SIDE_ENV})"
            )


def too_large(name: str, pixels: int, limit: int, dims: str = "") -> str:
    return (
        f"image {name} is {dims}{pixels / 1e6:.1f} Mpx, over the limit of {limit / 1e6:.1f} Mpx "
        f"({MAX_PIXELS_ENV}); downscale it"
    )


def unreadable(name: str, exc: BaseException, policy: ImagePolicy) -> InputError:
    """The one error for a file or request body that does not decode: Pillow's own bomb check (beyond its
    MAX_IMAGE_PIXELS) in the policy's words, anything else as unreadable, naming ``name`` (never a stream)."""
    if isinstance(exc, Image.DecompressionBombError):
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else policy.max_pixels + 1
        return ImageTooLargeError(too_large(name, pixels, min(policy.max_pixels, pixels - 1)))
    reason = (
        "not a format Pillow recognises"
        if isinstance(exc, Image.UnidentifiedImageError)
        else _STREAM_REPR.sub(name, str(exc)) or type(exc).__name__
    )
    return InputError(f"image {name} is unreadable, truncated or not an image ({reason}); replace or remove it")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _env_int(env: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{env}={text!r} is not an integer; set a whole number of pixels") from None
