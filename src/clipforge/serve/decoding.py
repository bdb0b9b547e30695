"""Request images -> pixel arrays: base64 / data URI -> bytes -> size check from the header -> the runtime's own
decoding and pre-processing (so a served embedding equals ``ZeroShotModel.embed_images`` on the same bytes).
Runs in worker threads, never on the event loop."""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from PIL import Image

from clipforge.errors import InputError
from clipforge.runtime.images import load_image, preprocess
from clipforge.serve.errors import ApiError
from clipforge.serve.settings import ServeSettings
from clipforge.specs import ImageSpec

_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def b64_bytes(value: str, field: str) -> bytes:
    """A data URI (``data:image/png;base64,...``) or a bare base64 string -> bytes."""
    if not isinstance(value, str) or not value:
        raise ApiError(422, field, "expected a base64 string or a data URI, got an empty value")
    match = _DATA_URI.match(value)
    if value.startswith("data:") and not match:
        raise ApiError(422, field, "data URI is not base64-encoded; use data:<type>;base64,<data>")
    if match and match.group(1) and not match.group(1).lower().startswith("image/"):
        raise ApiError(422, field, f"data URI type {match.group(1)[:60]} is not an image; use data:image/<type>;base64,"
                                   "<data> (or plain base64)")
    payload = _WHITESPACE.sub("", value[match.end():] if match else value)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, field, f"not valid base64 ({exc}); send the image as base64 or a data URI") from exc


def check_size(data: bytes, field: str, settings: ServeSettings) -> None:
    """Refuse images that are not images, too small (tracking pixels) or too large, before decoding pixels."""
    if not data:
        raise ApiError(422, field, "the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ApiError(413, field, f"the image is too large to decode ({exc})") from exc
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError...: not a format Pillow knows
        raise ApiError(422, field, f"not an image Pillow can read ({len(data)} bytes; "
                                   "send PNG, JPEG, WebP, GIF, BMP or TIFF)") from exc
    if width * height > settings.max_image_pixels:
        raise ApiError(413, field, f"the image is {width}x{height} = {width * height / 1e6:.0f} Mpx; "
                                   f"the limit is {settings.max_image_pixels / 1e6:.0f} Mpx, downscale it")
    if min(width, height) < settings.min_image_side:
        raise ApiError(422, field, f"the image is {width}x{height} pixels; images must be at least "
                                   f"{settings.min_image_side} pixels on each side")


def decode_pixels(data: bytes, field: str, spec: ImageSpec, settings: ServeSettings) -> np.ndarray:
    """Checked bytes -> ``pixel_values`` of one image, float32 [3, H, W]."""
    check_size(data, field, settings)
    try:
        return preprocess([load_image(data)], spec)[0]
    except InputError as exc:
        raise ApiError(422, field, f"the image is unreadable or truncated: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise ApiError(413, field, f"the image is too large to decode ({exc})") from exc


def decode_thumbnail(path: str, size: int) -> bytes:
    """A JPEG thumbnail (longest side ``size``) of an indexed file."""
    image = load_image(path)
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
