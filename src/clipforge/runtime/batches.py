"""Read many image files in batches; unreadable ones are recorded and skipped, not fatal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import InputError
from clipforge.progress import track
from clipforge.runtime.images import load_image


@dataclass
class ImageFailure:
    name: str
    reason: str


@dataclass
class ImageBatch:
    names: list[Path]
    images: list  # PIL images


def iter_image_batches(
    paths: list[Path], batch_size: int, failures: list[ImageFailure], show: bool = True
) -> Iterator[ImageBatch]:

    batch = ImageBatch([], [])
    for path in track(paths, "images", total=len(paths), show=show):
        try:
            image = load_image(path)
        except InputError as exc:
            failures.append(ImageFailure(str(path), str(exc)))
            continue
        batch.names.append(path)
        batch.images.append(image)
        if len(batch.names) == batch_size:
            yield batch
            batch = ImageBatch([], [])
    if batch.names:
        yield batch
