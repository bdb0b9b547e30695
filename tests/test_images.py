"""numpy/Pillow pre-processing vs the HF image processors: bit-identical pixel arrays.

The reference is transformers 5's PIL backend (CLIPImageProcessorPil / SiglipImageProcessorPil), requested
explicitly: with torchvision installed transformers defaults to its torchvision processors, which the runtime does
not reproduce bit for bit (``test_torchvision_processors_are_close`` states how close they are).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageFile
from transformers import AutoImageProcessor

from clipforge.errors import InputError
from clipforge.export.samples import ODD_MODES, ODD_SIZES, odd_image
from clipforge.families.base import image_spec_from_processor
from clipforge.runtime.images import load_image, preprocess

SIZES, MODES = ODD_SIZES, ODD_MODES  # the odd images export checks every folder's pre-processing on

# (name, base fixture, changes to its preprocessor_config.json)
VARIANTS = [
    ("clip-tiny", "clip", {}),
    ("siglip-tiny", "siglip", {}),
    ("clip-224", "clip", {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}),
    ("clip-336-bilinear", "clip", {"size": {"shortest_edge": 336}, "crop_size": 336, "resample": 2}),
    ("clip-odd-crop-pads", "clip", {"size": {"shortest_edge": 21}, "crop_size": {"height": 33, "width": 26}}),
    ("clip-int-size", "clip", {"size": 40, "crop_size": 31}),
    ("siglip-224-bicubic", "siglip", {"size": {"height": 224, "width": 224}, "resample": 3}),
    ("siglip-384", "siglip", {"size": {"height": 384, "width": 384}}),
    ("siglip-nonsquare", "siglip", {"size": {"height": 37, "width": 64}, "resample": 3}),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v[0])
def processor(request, tiny_checkpoints, tmp_path_factory):
    name, family, changes = request.param
    config = json.loads((tiny_checkpoints[family] / "preprocessor_config.json").read_text())
    folder = tmp_path_factory.mktemp(name)
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, **changes}))
    proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    assert type(proc).__name__.endswith("Pil")  # the PIL backend is the reference
    return proc


_image = odd_image


def _check(processor, images) -> None:
    want = processor(images=images, return_tensors="np")["pixel_values"]
    got = preprocess(images, image_spec_from_processor(processor))
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # bit-identical, not just close


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_pixels_identical_over_sizes(processor, size):
    _check(processor, [_image("RGB", size, seed=size[0] + size[1])])


@pytest.mark.parametrize("mode", MODES)
def test_pixels_identical_over_modes(processor, mode):
    image = _image(mode, (45, 61))
    assert image.mode == mode.split("+")[0]
    _check(processor, [image])


def test_mixed_batch(processor):
    _check(processor, [_image(m, s, i) for i, (m, s) in enumerate(zip(MODES, SIZES))])


def test_spec_from_the_family_matches_the_processor(tiny_checkpoint):
    from clipforge.registry import get_family

    family, folder = tiny_checkpoint
    image = _image("RGBA", (50, 70))
    spec = get_family(family).image_spec(folder)
    want = AutoImageProcessor.from_pretrained(folder, backend="pil")(images=[image], return_tensors="np")[
        "pixel_values"
    ]
    np.testing.assert_array_equal(preprocess([image], spec), want)


def test_single_image_and_empty_batch(tiny_clip):
    proc = AutoImageProcessor.from_pretrained(tiny_clip, backend="pil")
    spec = image_spec_from_processor(proc)
    assert preprocess(_image("RGB", (40, 50)), spec).shape == (1, 3, *spec.output_size)
    assert preprocess([], spec).shape == (0, 3, *spec.output_size)


# --- loading ----------------------------------------------------------------------------------------------
def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_paths_and_bytes_load_like_hf(tmp_path, tiny_clip):
    """A path goes through HF's ``load_image`` inside the processor: EXIF rotation, convert('RGB')."""
    proc = AutoImageProcessor.from_pretrained(tiny_clip, backend="pil")
    spec = image_spec_from_processor(proc)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise
    files = {
        "rgb.png": _encoded(_image("RGB", (40, 50)), "PNG"),
        "rgba.png": _encoded(_image("RGBA", (30, 20)), "PNG"),
        "gray.jpg": _encoded(_image("L", (41, 23)), "JPEG"),
        "rotated.jpg": _encoded(_image("RGB", (20, 60)), "JPEG", exif=exif),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        want = proc(images=str(tmp_path / name), return_tensors="np")["pixel_values"]
        np.testing.assert_array_equal(preprocess([tmp_path / name], spec), want, err_msg=name)
        np.testing.assert_array_equal(preprocess([data], spec), want, err_msg=name)
        np.testing.assert_array_equal(preprocess([str(tmp_path / name)], spec), want, err_msg=name)
    assert load_image(files["rotated.jpg"]).size == (20, 60)  # EXIF applied: 60x20 stored, shown upright
    original = _image("RGB", (40, 50))
    assert load_image(original) is original  # PIL images are used as given


def test_bad_files_name_the_culprit(tmp_path):
    png, jpeg = _encoded(_image("RGB", (64, 64)), "PNG"), _encoded(_image("RGB", (64, 64)), "JPEG")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ["bad.jpg", "cut.png", "cut.jpg", "empty.png"]:
        with pytest.raises(InputError, match=f"{name} is unreadable, truncated or not an image") as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value) and "replace or remove it" in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never switched on globally
    with pytest.raises(InputError, match="missing.png does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is not a file"):
        load_image(tmp_path)
    with pytest.raises(InputError, match="unreadable"):
        load_image(b"\x00\x01garbage")
    with pytest.raises(InputError, match="pass a PIL image, a path or bytes"):
        load_image(42)


def test_torchvision_processors_are_close(tiny_checkpoints):
    """transformers' torchvision ("fast") processors vs the runtime (= the PIL ones): max pixel difference and
    the tiny models' image-embedding cosine, over the RGB sizes above."""
    import torch
    from transformers import AutoModel

    from clipforge._torchvision import ensure_torchvision

    if ensure_torchvision() == "absent":
        pytest.skip("torchvision is not installed: transformers uses the PIL processors")
    images = [_image("RGB", size, seed=size[0]) for size in SIZES if min(size) >= 7]
    for family in ("clip", "siglip"):
        folder = tiny_checkpoints[family]
        fast = AutoImageProcessor.from_pretrained(folder, backend="torchvision")
        want = fast(images=images, return_tensors="np")["pixel_values"]
        got = preprocess(images, image_spec_from_processor(AutoImageProcessor.from_pretrained(folder, backend="pil")))
        diff = float(np.abs(got - want).max())
        model = AutoModel.from_pretrained(folder).eval()
        with torch.no_grad():
            a, b = (model.get_image_features(pixel_values=torch.from_numpy(p)).pooler_output for p in (got, want))
        cosine = float(torch.nn.functional.cosine_similarity(a, b).min())
        print(f"{family}: max pixel diff {diff:.3f}, min embedding cosine {cosine:.6f}")
        assert diff <= 0.05 and cosine >= 0.9995, (family, diff, cosine)  # measured: 0.015/0.008, 0.99999/0.99989
