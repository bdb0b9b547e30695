"""Pipeline graphs for open_clip models: torchvision-convention pre-processing in the graph checked against the
Python runtime (which equals open_clip's transform bit for bit, see test_openclip.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.image_graph import image_model
from clipforge.pipeline.validate import level_diff
from clipforge.runtime.images import preprocess
from clipforge.specs import ImageSpec

OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
# open_clip's resize modes as image_spec_from_cfg writes them: shortest (square), shortest (non-square size),
# longest with a fill colour, squash; bicubic and bilinear
SPECS = {
    "shortest-bicubic": ImageSpec("shortest_edge", (64, 64), (64, 64), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD,
                                  convention="torchvision"),
    "shortest-bilinear": ImageSpec("shortest_edge", (48, 48), (48, 48), 2, 1 / 255, (0.5, 0.4, 0.3),
                                   (0.2, 0.25, 0.3), convention="torchvision"),
    "fit-shortest": ImageSpec("fit_shortest", (64, 40), (64, 40), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD,
                              convention="torchvision"),
    "fit-longest-fill": ImageSpec("fit_longest", (56, 56), (56, 56), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD,
                                  convention="torchvision", fill=127),
    "squash": ImageSpec("exact", (40, 52), None, 2, 1 / 255, OPENAI_MEAN, OPENAI_STD, convention="torchvision"),
}
# (height, width): downscaling both ways, upscaling, a long thin image (padding in fit_longest), and sizes whose
# crop margin is odd (3 = 4k + 3: torchvision's half-to-even offset differs from HF's floor there)
SIZES = [(67, 64), (64, 131), (300, 200), (33, 57), (17, 230), (120, 120), (51, 48)]


def encoded(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([127 + 120 * np.sin(x / 9 + c) * np.cos(y / 13) for c in range(3)], -1)
    return np.clip(base + np.random.default_rng(seed).normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_torchvision_preprocessing_within_one_level_of_the_runtime(name):
    """PNG bytes and decoded pixels: same shape as the runtime's pixel_values and at most one uint8 level apart
    (ONNX Resize sums in float, PIL in fixed point: a value on a rounding boundary can land one level off)."""
    spec = SPECS[name]
    from_bytes = extensions_session(image_model(spec, encoded=True))
    from_pixels = extensions_session(image_model(spec, encoded=False))
    for i, size in enumerate(SIZES):
        array = noise(*size, seed=i) if i % 2 else smooth(*size, seed=i)
        data = encoded(array)
        got = from_bytes.run(None, {"image": np.frombuffer(data, np.uint8)})[0]
        want = preprocess([data], spec)
        assert got.shape == want.shape == (1, 3, *spec.output_size), (name, size)
        levels = np.abs(got - want) * np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1) * 255
        assert levels.max() <= 1.001 and (levels > 0.5).mean() < 0.05, (name, size, levels.max())
        np.testing.assert_array_equal(from_pixels.run(None, {"pixels": array})[0], got)


def test_grey_png_and_jpeg_bytes_follow_the_runtime():
    """A grey PNG gets three channels as the runtime's RGB conversion gives; JPEG goes through another libjpeg
    than Pillow's, so its figure is a bound on the decoder difference, not the pre-processing's."""
    spec = SPECS["shortest-bicubic"]
    session = extensions_session(image_model(spec, encoded=True))
    grey = Image.fromarray(smooth(90, 70)).convert("L")
    buffer = io.BytesIO()
    grey.save(buffer, "PNG")
    data = buffer.getvalue()
    got = session.run(None, {"image": np.frombuffer(data, np.uint8)})[0]
    assert level_diff(got, preprocess([data], spec), spec) <= 1.001
    for size in [(120, 160), (81, 64)]:
        data = encoded(smooth(*size), "JPEG", quality=95)
        got = session.run(None, {"image": np.frombuffer(data, np.uint8)})[0]
        want = preprocess([data], spec)
        levels = np.abs(got - want) * np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1) * 255
        assert levels.mean() < 1.0 and levels.max() <= 10, (size, levels.mean(), levels.max())


def test_the_hf_convention_would_be_measurably_wrong():
    """The tests above can fail: the HF graph (floor crop offsets) on the same spec is far from the torchvision
    runtime where the crop margin is 3 or 7 pixels (half to even rounds 1.5 and 3.5 up, floor down)."""
    from dataclasses import replace

    spec = SPECS["shortest-bicubic"]
    session = extensions_session(image_model(replace(spec, convention="hf"), encoded=False))
    for size in [(67, 64), (64, 71)]:
        array = noise(*size, seed=5)
        got = session.run(None, {"pixels": array})[0]
        assert level_diff(got, preprocess([Image.fromarray(array)], spec), spec) > 10, size
