"""The files behind ``/v1/images/{id}``: an id is parsed strictly, and a file is served only while it still is
the image that was indexed (a regular file, no symlink on its path, the same size, mtime and sha256), with the
content type of the format Pillow decodes, never one guessed from the name. A HEIC/HEIF or camera RAW file,
which browsers do not show, is served as a JPEG rendering of it (upright, full size)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import threading
from collections import OrderedDict

from PIL import Image

from clipforge.index.base import Stored
from clipforge.runtime.photo_formats import RAW_SUFFIXES, register_heif
from clipforge.serve.errors import ApiError

INT64_MAX = 2**63 - 1  # SQLite's and PostgreSQL's largest id
IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
_DIGITS = re.compile(r"[0-9]+")
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the read


def parse_id(text: str) -> int:
    """A path segment -> an image id: decimal digits only, within int64; 422 or 404 otherwise."""
    if not _DIGITS.fullmatch(text):
        raise ApiError(422, "id", f"image id {text[:40]!r} is not a decimal number; use an id from /v1/search")
    if len(text) > 19 or int(text) > INT64_MAX:
        raise ApiError(404, "id", f"no image with id {text[:40]} in the index (ids are at most {INT64_MAX})")
    return int(text)


def read_indexed(image_id: int, path: str, stored: Stored) -> bytes:
    """The bytes of the indexed file, or 404 when it changed since indexing (replaced, a symlink, gone)."""
    changed = ApiError(
        404,
        "id",
        f"image {image_id} changed since it was indexed (or is gone); re-index its folder with 'clipforge index'",
    )
    if os.path.realpath(path) != path:
        raise changed
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW)
    except OSError:
        raise changed from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != stored.size or st.st_mtime != stored.mtime:
            raise changed
        data = f.read(stored.size + 1)
    if hashlib.sha256(data).hexdigest() != stored.sha256:
        raise changed
    return data


def media_type(image_id: int, data: bytes, suffix: str = "") -> str | None:
    """The MIME type of the format Pillow reads in ``data`` (404 when it reads none), or None for a file a
    browser cannot show as it is (HEIC/HEIF, a camera RAW file told by its ``suffix``): served as a JPEG."""
    if suffix.lower() in RAW_SUFFIXES:
        return None
    register_heif()
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
    except Exception as exc:  # Pillow raises many types on bad data
        raise ApiError(404, "id", f"image {image_id} is no longer an image Pillow can read; re-index") from exc
    return None if fmt == "HEIF" else Image.MIME.get(fmt or "", "application/octet-stream")


class ThumbnailCache:
    """Recent thumbnails by (sha256 of the file, size): a file read and checked again is not decoded again."""

    def __init__(self, entries: int = 512):
        self.entries, self.items, self.lock = entries, OrderedDict(), threading.Lock()

    def get(self, key: tuple):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: tuple, value: bytes) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.entries:
                self.items.popitem(last=False)
