"""Find the image files under the given roots and decode them in threads (both back-ends share this).

Each decode task reads the file once: its sha256 is taken from the bytes, and a file whose content equals the
stored row (only its mtime changed) is not decoded at all. Decoding is exact (bit-identical to the HF
processor) or, by default for indexing, JPEG draft mode (see ``runtime.images.load_image``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import InputError
from clipforge.runtime.image_policy import ImagePolicy
from clipforge.runtime.images import IMAGE_SUFFIXES, decode_photo, draft_request, photo_header, resized_pixels
from clipforge.runtime.photo_info import PhotoInfo
from clipforge.specs import ImageSpec


@dataclass(frozen=True)
class FileState:
    path: str  # absolute
    size: int
    mtime: float


@dataclass
class Walk:
    roots: list[str]
    files: list[FileState]
    unreadable: list[tuple[str, str]]

    def covers(self, path: str) -> bool:
        """Whether ``path`` lies under one of the walked roots (so its absence means it was deleted)."""
        return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)


def walk(paths: Iterable[str | Path]) -> Walk:
    """Folders recursively (image suffixes only, sorted), files as given. A root that does not exist is an
    error; a file that vanishes or cannot be stat'ed while walking is reported, not fatal."""
    roots, files, unreadable = [], {}, []
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise InputError(f"{given} does not exist; pass image files or folders")
        root = root.resolve()
        roots.append(str(root))
        candidates = (
            sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else [root]
        )
        for path in candidates:
            try:
                st = path.stat()
            except OSError as exc:
                unreadable.append((str(path), exc.strerror or str(exc)))
                continue
            if path.is_file():
                files[str(path)] = FileState(str(path), st.st_size, st.st_mtime)
    return Walk(roots, list(files.values()), unreadable)


@dataclass
class Decoded:
    state: FileState
    sha256: str = ""
    pixels: np.ndarray | None = None  # resized + cropped HWC uint8
    unchanged: bool = False  # same content as the stored row
    error: str | None = None
    info: PhotoInfo | None = None  # the photo's metadata (date falling back to the file's mtime)


class Decoder:
    """Decode + resize files in ``threads`` threads (Pillow releases the GIL while decoding and resizing)."""

    def __init__(self, spec: ImageSpec, exact: bool, threads: int | None = None):
        self.spec, self.policy = spec, ImagePolicy.from_env()
        self.draft = None if exact else draft_request(spec)
        self.pool = ThreadPoolExecutor(
            max_workers=threads or min(4, os.cpu_count() or 1), thread_name_prefix="clipforge-decode"
        )

    def submit(self, items: list[tuple[FileState, str | None]]) -> list[Future]:
        """``items``: (file, sha256 of its stored row or None) -> futures of ``Decoded``."""
        return [self.pool.submit(self._one, state, known) for state, known in items]

    def _one(self, state: FileState, known_sha: str | None) -> Decoded:
        try:
            data = Path(state.path).read_bytes()
        except OSError as exc:
            return Decoded(state, error=f"cannot be read ({exc.strerror or exc})")
        digest = hashlib.sha256(data).hexdigest()
        if digest == known_sha:
            return Decoded(state, digest, unchanged=True, info=header_info(state, data))
        try:
            image, info = decode_photo(data, draft=self.draft, name=state.path, policy=self.policy)
            pixels = resized_pixels(image, self.spec, self.policy)
        except InputError as exc:  # the image policy's words, as the library, CLI and server say them
            return Decoded(state, digest, error=str(exc))
        return Decoded(state, digest, pixels, info=info.with_mtime(state.mtime))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def header_info(state: FileState, data: bytes) -> PhotoInfo:
    """The metadata of a file whose content is already indexed, from its header (no pixel decoded)."""
    return photo_header(data, Path(state.path).suffix).with_mtime(state.mtime)
