"""JPEG draft decoding for indexing (runtime.images.load_image(draft=)) and the index's exact path."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clipforge.index import Index
from clipforge.runtime.images import draft_request, load_image, resized_pixels
from clipforge.specs import ImageSpec

SPEC = ImageSpec("shortest_edge", (32, 32), (32, 32), 3, 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _photo(path, seed: int, size=(1600, 1200)):
    """A smooth random colour field (JPEG), like a downscaled photo."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    small.resize(size, Image.BICUBIC).save(path, quality=92)
    return path


def test_draft_decodes_smaller_but_keeps_twice_the_model_size(tmp_path):
    path = _photo(tmp_path / "a.jpg", 0)
    full, drafted = load_image(path), load_image(path, draft=draft_request(SPEC))
    assert full.size == (1600, 1200)
    assert drafted.size == (200, 150)  # libjpeg's 1/8 scale: both sides still >= 2 x 32
    assert min(load_image(path, draft=(400, 400)).size) >= 400  # 1/2 scale: 800x600
    exact, fast = resized_pixels(full, SPEC).astype(float), resized_pixels(drafted, SPEC).astype(float)
    assert exact.shape == fast.shape == (32, 32, 3)
    assert np.abs(exact - fast).mean() < 2.0  # grey levels out of 255


def test_draft_is_ignored_for_other_formats_and_off_by_default(tmp_path):
    rng = np.random.default_rng(1)
    png = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(png)
    assert np.array_equal(np.asarray(load_image(png, draft=(64, 64))), np.asarray(load_image(png)))
    assert draft_request(ImageSpec("none", (32, 32), None, 3, 1 / 255, (0.5,) * 3, (0.5,) * 3)) is None


def test_exact_decode_stores_the_runtime_embeddings_and_draft_stays_close(loaded_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    files = [_photo(folder / f"{i}.jpg", i) for i in range(6)]
    reference = loaded_model.embed_images(files)
    stored = {}
    for mode in ("exact", "draft"):
        with Index(tmp_path / f"{mode}.db", loaded_model) as idx:
            idx.add([folder], exact_decode=mode == "exact")
            _, paths, matrix = idx.backend.vectors()
            stored[mode] = matrix[np.argsort(paths)]
    np.testing.assert_allclose(stored["exact"], reference, atol=1e-6)
    cosine = (stored["draft"] * reference).sum(axis=1)
    assert cosine.mean() >= 0.99 and not np.allclose(stored["draft"], reference, atol=1e-6)
