"""numpy/Pillow pre-processing vs the HF image processors.

torchvision is not installed (PyPI's build does not import beside torch 2.13 here), so transformers 5 uses its
PIL backend (CLIPImageProcessorPil / SiglipImageProcessorPil): that backend is the reference for these tests.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from transformers import AutoImageProcessor

from clipforge.errors import InputError
from clipforge.families.base import image_spec_from_processor
from clipforge.runtime.images import load_image, preprocess
from clipforge.testing.tiny import clip_processor_config, siglip_processor_config

SIZES = [(1, 1), (7, 5), (32, 32), (33, 47), (224, 224), (480, 640), (1, 300), (300, 7), (1000, 333)]
MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "PA"]


@pytest.fixture(scope="module", params=[("clip", 32), ("clip", 224), ("siglip", 32), ("siglip", 384)],
                ids=lambda p: f"{p[0]}{p[1]}")
def processor(request, tmp_path_factory):
    family, size = request.param
    folder = tmp_path_factory.mktemp(f"proc{family}{size}")
    config = clip_processor_config(size) if family == "clip" else siglip_processor_config(size)
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    proc = AutoImageProcessor.from_pretrained(folder)
    assert type(proc).__name__.endswith("Pil")
    return proc


def _image(mode, size, seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    rgba = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16)).convert("I;16")
    if mode == "P":
        return rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "PA":
        image = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
        image.info["transparency"] = 0
        return image
    return rgba.convert(mode)


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_pixels_match_hf_over_sizes(processor, size):
    image = _image("RGB", size, seed=size[0])
    want = processor(images=[image], return_tensors="np")["pixel_values"]
    got = preprocess([image], image_spec_from_processor(processor))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_pixels_match_hf_over_modes(processor, mode):
    image = _image(mode, (45, 61))
    want = processor(images=[image], return_tensors="np")["pixel_values"]
    got = preprocess([image], image_spec_from_processor(processor))
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_batch_of_mixed_images(processor):
    images = [_image(m, s, i) for i, (m, s) in enumerate(zip(MODES, SIZES))]
    want = processor(images=images, return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(preprocess(images, image_spec_from_processor(processor)), want, atol=1e-6)


def test_paths_and_bytes(tmp_path):
    image = _image("RGB", (40, 50))
    image.save(tmp_path / "a.png")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    assert np.array_equal(np.asarray(load_image(tmp_path / "a.png")), np.asarray(image))
    assert load_image(buffer.getvalue()).size == (50, 40)


def test_bad_files_name_the_culprit(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    good = io.BytesIO()
    _image("RGB", (64, 64)).save(good, format="PNG")
    (tmp_path / "cut.png").write_bytes(good.getvalue()[:200])
    with pytest.raises(InputError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(InputError, match="cut.png"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="unreadable"):
        load_image(b"\x00\x01garbage")
