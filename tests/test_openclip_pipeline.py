"""Pipeline graphs for open_clip models: torchvision-convention pre-processing in the graph checked against the
Python runtime (which equals open_clip's transform bit for bit, see test_openclip.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.checks import level_diff
from clipforge.pipeline.image_graph import image_model
from clipforge.runtime.images import preprocess
from clipforge.specs import ImageSpec

OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
# open_clip's resize modes as image_spec_from_cfg writes them: shortest (square), shortest (non-square size),
# longest with a fill colour, squash; bicubic and bilinear
SPECS = {
    "shortest-bicubic": ImageSpec(
        "shortest_edge", (64, 64), (64, 64), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD, convention="torchvision"
    ),
    "shortest-bilinear": ImageSpec(
        "shortest_edge", (48, 48), (48, 48), 2, 1 / 255, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), convention="torchvision"
    ),
    "fit-shortest": ImageSpec(
        "fit_shortest", (64, 40), (64, 40), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD, convention="torchvision"
    ),
    "fit-longest-fill": ImageSpec(
        "fit_longest", (56, 56), (56, 56), 3, 1 / 255, OPENAI_MEAN, OPENAI_STD, convention="torchvision", fill=127
    ),
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


# --- tokenizer graph and whole pipelines on tiny open_clip models -------------------------------------------
open_clip = pytest.importorskip("open_clip")

from test_pipeline import TRICKY, random_texts  # noqa: E402
from test_text import CORPUS  # noqa: E402

LABELS, TEMPLATES = ["red circle", "blue square", "a dog"], ["a photo of a {}.", "a drawing of a {}."]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """ViT with open_clip's default pre-processing (shortest side, bicubic); ModifiedResNet with resize_mode
    "longest" and a grey fill colour (fit_longest: padding inside the graph)."""
    from clipforge.testing.tiny_openclip import model_config, random_model, save_hub_layout

    root = tmp_path_factory.mktemp("openclip-pipeline-sources")
    vit, resnet = random_model(model_config("vit"), seed=1), random_model(model_config("resnet"), seed=2)
    longest = {"resize_mode": "longest", "fill_color": 128, "interpolation": "bilinear"}
    return {
        "vit": save_hub_layout(vit, model_config("vit"), root / "vit"),
        "resnet": save_hub_layout(resnet, model_config("resnet"), root / "rn", longest),
    }


@pytest.fixture(scope="module")
def exported(sources, tmp_path_factory):
    from clipforge.export.exporter import export_model

    root = tmp_path_factory.mktemp("openclip-pipeline-exports")
    return {name: export_model(str(src), root / name, show_progress=False).path for name, src in sources.items()}


@pytest.fixture(scope="module")
def pipelines(sources, exported, tmp_path_factory):
    """export-pipeline from an exported folder (vit) and straight from the open_clip source (resnet)."""
    from clipforge.cli.main import main

    root = tmp_path_factory.mktemp("openclip-pipelines")
    for name, model in [("vit", exported["vit"]), ("resnet", sources["resnet"])]:
        assert main(["export-pipeline", str(model), "-o", str(root / name), "-q"]) == 0
    return {name: root / name for name in ("vit", "resnet")}


def _outside_the_graph(text: str) -> bool:
    """Texts the documented exceptions touch: NUL, ftfy's NFC (decomposed accents, half-width sound marks), HTML
    entities."""
    import html
    import unicodedata

    sound_marks = "\uff9e" in text or "\uff9f" in text
    return "\x00" in text or html.unescape(text) != text or unicodedata.normalize("NFC", text) != text or sound_marks


def _graph_ids(folder, texts: list[str]) -> np.ndarray:
    from clipforge.pipeline.text_graph import text_model
    from clipforge.specs import Manifest

    session = extensions_session(text_model(folder, Manifest.load(folder).text))
    return session.run(None, {"text": np.array(texts, dtype=object)})[0]


@pytest.mark.slow
def test_token_ids_equal_open_clip(exported):
    """open_clip's own SimpleTokenizer on the tricky corpora (curly quotes, ligatures, control characters, tabs and
    newlines, special tokens written in the text, truncation to 77 with EOS kept, padding with 0)."""
    texts = [t for t in CORPUS + TRICKY + random_texts(300, seed=7) if not _outside_the_graph(t)]
    texts += [
        "“curly” ‘quotes’ ﬁne ﬂow ĳ",
        "x\x1cy\x0bz\u200bw",
        "<end_of_text> mid <start_of_text> text",
        "a " * 80,
        "ＦＵＬＬ－ｗｉｄｔｈ ＡＢＣ！ 猫の写真！？，１００％ ｱｲｳ ￥５",
    ]
    got = _graph_ids(exported["vit"], texts)
    want = open_clip.SimpleTokenizer()(texts).numpy()
    assert got.shape == want.shape == (len(texts), 77)
    bad = [t for t, a, b in zip(texts, got, want) if not np.array_equal(a, b)]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, e.g. {bad[:3]}"
    assert len(texts) > 300 and (got[:, -1] == 49407).any()  # some were truncated, ending in EOS


@pytest.mark.slow
def test_documented_tokenizer_limits_are_real(exported, pipelines):
    """HTML entities, decomposed accents and half-width sound marks, which open_clip's cleaning repairs (HTML
    unescaping, NFC), reach the BPE unchanged; the text graph's metadata says so."""
    import onnx

    from clipforge.pipeline.text_graph import OPENCLIP_NOT_IN_GRAPH

    texts = ["a &amp; b", "\uff76\uff9e", "cafe\u0301"]
    got, want = _graph_ids(exported["vit"], texts), open_clip.SimpleTokenizer()(texts).numpy()
    assert all(not np.array_equal(a, b) for a, b in zip(got, want))
    # the entity is tokenized as its characters: the words open_clip finds in "a & amp ; b"
    np.testing.assert_array_equal(got[:1], open_clip.SimpleTokenizer()(["a & amp ; b"]).numpy())
    meta = {p.key: p.value for p in onnx.load(f"{pipelines['vit']}_txt.onnx").metadata_props}
    assert meta["tokenizer_limits"] == OPENCLIP_NOT_IN_GRAPH and "&amp;" in meta["tokenizer_limits"]


@pytest.mark.parametrize("name", ["vit", "resnet"])
@pytest.mark.slow
def test_pipeline_classifies_like_the_runtime(name, pipelines, exported):
    import json

    from clipforge.export.validate import cosine_rows
    from clipforge.pipeline import PipelineModel
    from clipforge.runtime.model import ZeroShotModel

    pipeline, runtime = PipelineModel.from_prefix(pipelines[name]), ZeroShotModel.from_onnx(exported[name])
    record = json.loads(pipelines[name].with_name(f"{name}_pipeline.json").read_text())
    assert record["preset"] == "multimodal_openclip" and record["validation"]["text"]["ids_identical"] is True
    for i, size in enumerate([(50, 70), (90, 33), (64, 64)]):
        data = encoded(smooth(*size, seed=i))
        got = pipeline.classify(data, LABELS, TEMPLATES, top_k=3)
        want = runtime.classify([data], LABELS, TEMPLATES, top_k=3)[0]
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert max(abs(g["score"] - w["score"]) for g, w in zip(got, want)) <= 1e-3
        assert abs(sum(g["score"] for g in got) - 1.0) < 1e-5
        np.testing.assert_allclose(
            pipeline.embed_pixels(smooth(*size, seed=i)), pipeline.embed_image(data), atol=1e-6, rtol=0
        )
    jpeg = encoded(smooth(120, 160), "JPEG", quality=95)
    assert cosine_rows(pipeline.embed_image(jpeg), runtime.embed_images([jpeg])).min() >= 0.99
    texts = ["a photo of a cat.", "naïve café", "x" * 300]
    assert cosine_rows(pipeline.embed_texts(texts), runtime.embed_texts(texts)).min() >= 0.9999


@pytest.mark.slow
def test_classifier_with_preprocessing(exported, tmp_path):
    from clipforge.cli.main import main
    from clipforge.runtime.model import ZeroShotModel

    out = tmp_path / "clf.onnx"
    assert (
        main(
            [
                "export-classifier",
                str(exported["resnet"]),
                "-o",
                str(out),
                "-l",
                ",".join(LABELS),
                "--with-preprocessing",
            ]
        )
        == 0
    )
    session, model = extensions_session(out), ZeroShotModel.from_onnx(exported["resnet"])
    for i, size in enumerate([(40, 60), (90, 33), (300, 17)]):
        data = encoded(smooth(*size, seed=i))
        scores, _ = session.run(None, {"image": np.frombuffer(data, np.uint8)})
        want = model.classify([data], LABELS, top_k=len(LABELS))[0]
        got = {label: float(s) for label, s in zip(LABELS, scores[0])}
        assert max(abs(got[p["label"]] - p["score"]) for p in want) <= 1e-3
