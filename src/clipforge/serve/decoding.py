"""Request images -> pixel arrays: base64 / data URI -> bytes -> the runtime's own decoding (its image policy
checks the header before decoding) and pre-processing (so a served embedding equals
``ZeroShotModel.embed_images`` on the same bytes). Runs in worker threads, never on the event loop."""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np

from clipforge.errors import InputError
from clipforge.runtime.image_policy import ImagePolicy, ImageTooLargeError
from clipforge.runtime.images import load_image, preprocess
from clipforge.runtime.patches import Patches
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
        raise ApiError(
            422,
            field,
            f"data URI type {match.group(1)[:60]} is not an image; use data:image/<type>;base64,"
            "<data> (or plain base64)",
        )
    payload = _WHITESPACE.sub("", value[match.end() :] if match else value)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, field, f"not valid base64 ({exc}); send the image as base64 or a data URI") from exc


def decode_pixels(data: bytes, field: str, spec: ImageSpec, settings: ServeSettings) -> np.ndarray | Patches:
    """Request bytes -> ``pixel_values`` of one image, float32 [3, H, W] (a NaFlex model: a ``Patches`` batch of
    one at ``spec``'s budget), through the runtime's image policy (the server's ``max_image_pixels``/
    ``min_image_side``): 413 for a too large image, 422 for anything else."""
    policy = settings.image_policy()
    try:
        pixels = preprocess([load_image(data, name=field, policy=policy)], spec, policy)
        return pixels if isinstance(pixels, Patches) else pixels[0]
    except ImageTooLargeError as exc:
        raise ApiError(413, field, str(exc)) from exc
    except InputError as exc:
        raise ApiError(422, field, str(exc)) from exc


def decode_thumbnail(data: bytes, name: str, size: int, policy: ImagePolicy, suffix: str = "") -> bytes:
    """A JPEG thumbnail (longest side ``size``) of an indexed file's bytes (``suffix``: the file's, which tells
    a camera RAW file apart)."""
    image = load_image(data, name=name, policy=policy, suffix=suffix)
    image.thumbnail((size, size))
    return _jpeg(image, 85)


def decode_rendering(data: bytes, name: str, policy: ImagePolicy, suffix: str) -> bytes:
    """The full picture of a file browsers cannot show (HEIC/HEIF, camera RAW) as a JPEG, upright."""
    return _jpeg(load_image(data, name=name, policy=policy, suffix=suffix), 92)


def _jpeg(image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
