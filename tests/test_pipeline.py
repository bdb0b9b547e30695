"""export-pipeline: graphs that decode, pre-process, tokenize, encode and normalise in one onnxruntime call,
checked against the HF tokenizer and the Python runtime (not against clipforge's own validator)."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import onnx
import pytest
from PIL import Image
from transformers import AutoTokenizer

from clipforge.cli.main import main
from clipforge.export.validate import cosine_rows
from clipforge.models import ZeroShotModel
from clipforge.pipeline import PipelineModel, list_presets
from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.presets import PipelineConfig
from clipforge.pipeline.text_graph import text_model
from clipforge.registry import list_models
from clipforge.specs import Manifest

TRICKY = [
    "",
    " ",
    "a photo of a cat.",
    "A Photo Of  THE  Eiffel Tower!!",
    "it's 2024, isn't it? 3.14 - 1,000",
    "tab\tand\nnewline\r\n",
    "naïve café, Über-straße",
    "emoji 😀 中文 русский",
    "x <a",
    "<<",
    "a <|endoftext|> b",
    "\u00a0non\u2009breaking\u3000spaces",
    "don't 'quote' me",
    "x" * 300,
    "many words " * 40,
    "▁underline▁",
]
PIECES = [
    "cat",
    "Dog",
    "a",
    "photo",
    "of",
    "Café",
    "2024",
    "3.14",
    "'s",
    "don't",
    "...",
    "!!",
    "—",
    "(",
    ")",
    "#",
    "😀",
    "中文",
    " ",
    "  ",
    "\t",
    "\n",
    "<",
    ">",
    "_",
    "CAPS",
    "x²",
    "ﬁ",
    "\u00a0",
    "▁",
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) + rng.choice(["", " "]) for _ in range(rng.randint(1, 14))) for _ in range(n)]


@pytest.fixture(scope="module")
def exported(exported_tiny, hf_checkpoints):
    return {f: exported_tiny[f] for f in hf_checkpoints}


@pytest.fixture(scope="module")
def pipelines(exported, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    for family, folder in exported.items():
        assert main(["export-pipeline", str(folder), "-o", str(root / family), "-q"]) == 0  # family's preset
    return {family: root / family for family in exported}


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **options) -> bytes:
    image = Image.fromarray(array)
    image = image.convert(mode) if mode else image
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([127 + 120 * np.sin(x / 9 + c) * np.cos(y / 13) for c in range(3)], -1)
    noise = np.random.default_rng(seed).normal(0, 4, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_files_interface_and_metadata(pipelines, tiny_checkpoint):
    family, _ = tiny_checkpoint
    prefix = pipelines[family]
    for suffix, inputs in [("_img.onnx", ["image"]), ("_img_hwc.onnx", ["pixels"]), ("_txt.onnx", ["text"])]:
        model = onnx.load(f"{prefix}{suffix}")
        assert [i.name for i in model.graph.input] == inputs
        assert [o.name for o in model.graph.output] == ["embedding"]
        domains = {o.domain: o.version for o in model.opset_import}
        assert domains[""] == 18 and "ai.onnx.contrib" in domains
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["family"] == family and meta["preset"] == f"multimodal_{family}"
        assert (json.loads(meta["logit_bias"]) is None) is (family == "clip")
    assert not list(prefix.parent.glob(".*tmp*"))
    from clipforge._io import sha256

    record = json.loads(prefix.with_name(prefix.name + "_pipeline.json").read_text())
    assert record["family"] == family and record["preset"] == f"multimodal_{family}"
    assert record["validation"]["text"]["ids_identical"] is True
    assert record["files"] == {n: sha256(prefix.parent / n) for n in record["files"]}
    assert sorted(record["files"]) == sorted(f"{prefix.name}{s}" for s in ("_img.onnx", "_img_hwc.onnx", "_txt.onnx"))


def test_token_ids_identical_to_hf(exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    folder = exported[family]
    spec = Manifest.load(folder).text
    hf = AutoTokenizer.from_pretrained(str(folder))
    texts = TRICKY + random_texts(400)
    paddings = ["longest", "max_length"] if family == "clip" else ["max_length"]
    for padding in paddings:
        from dataclasses import replace

        spec_p = replace(spec, padding=padding)
        ids, *mask = extensions_session(text_model(folder, spec_p)).run(None, {"text": np.array(texts, dtype=object)})
        kwargs = {"padding": True} if padding == "longest" else {"padding": "max_length"}
        want = hf(texts, truncation=True, max_length=spec.context_length, return_tensors="np", **kwargs)
        assert ids.shape == want["input_ids"].shape
        bad = [t for t, a, b in zip(texts, ids, want["input_ids"]) if not np.array_equal(a, b)]
        assert not bad, f"{len(bad)} texts differ, e.g. {bad[:3]}"
        if mask:
            np.testing.assert_array_equal(mask[0], want["attention_mask"])


def test_text_embeddings_match_runtime(pipelines, exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    texts = TRICKY[:-3] + random_texts(20, seed=1)
    got = PipelineModel.from_prefix(pipelines[family]).embed_texts(texts)
    want = ZeroShotModel.from_onnx(exported[family]).embed_texts(texts)
    assert got.shape == want.shape
    assert cosine_rows(got, want).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


IMAGES = [
    ((40, 50), None),
    ((300, 200), None),
    ((90, 30), "L"),
    ((64, 64), "RGBA"),
    ((17, 230), "P"),
    ((33, 57), None),
    ((500, 333), None),
]


def test_png_embeddings_match_runtime(pipelines, exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    pipeline, runtime = PipelineModel.from_prefix(pipelines[family]), ZeroShotModel.from_onnx(exported[family])
    rng = np.random.default_rng(0)
    for i, (size, mode) in enumerate(IMAGES):
        array = smooth(*size, seed=i) if i % 2 else rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        data = png(array, mode)
        got, want = pipeline.embed_image(data), runtime.embed_images([data])
        assert got.shape == (1, runtime.manifest.embed_dim)
        assert cosine_rows(got, want).min() >= 0.999, (size, mode)
        if mode is None:  # the decoded-pixels graph sees the same pixels
            np.testing.assert_allclose(pipeline.embed_pixels(array), got, atol=1e-6, rtol=0)


def test_in_graph_preprocessing_within_one_level_of_pil(exported, tiny_checkpoint):
    from clipforge.pipeline.checks import level_diff
    from clipforge.pipeline.image_graph import image_model
    from clipforge.runtime.images import preprocess

    family, _ = tiny_checkpoint
    spec = Manifest.load(exported[family]).image
    session = extensions_session(image_model(spec, encoded=True))
    for i, (size, mode) in enumerate(IMAGES):
        data = png(smooth(*size, seed=i), mode)
        got = session.run(None, {"image": np.frombuffer(data, np.uint8)})[0]
        assert level_diff(got, preprocess([data], spec), spec) <= 1.001, (size, mode)  # at most one uint8 level


@pytest.mark.parametrize("size", [(500, 333), (333, 500), (300, 400), (60, 60), (20, 300)])
@pytest.mark.parametrize("mode,resample", [("exact", 2), ("exact", 3), ("shortest_edge", 3), ("shortest_edge", 2)])
def test_resize_follows_pillow(size, mode, resample):
    """Both pass orders of Pillow >= 13, bicubic and bilinear, upscaling and downscaling, crop with padding."""
    from clipforge.pipeline.image_graph import image_model
    from clipforge.runtime.images import preprocess
    from clipforge.specs import ImageSpec

    crop = (224, 224) if mode == "shortest_edge" else None
    target = (200, 200) if mode == "shortest_edge" else (224, 224)  # 200 < crop: padding path
    spec = ImageSpec(mode, target, crop, resample, 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    array = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    got = extensions_session(image_model(spec, encoded=False)).run(None, {"pixels": array})[0]
    want = preprocess([Image.fromarray(array)], spec)
    levels = np.abs(got - want) * 0.5 * 255
    # float sums vs PIL's fixed point: values on a rounding boundary may land one level apart; measured worst:
    # 5.4% of values for bilinear 10x upscaling (20 -> 200 px), under 0.5% for bicubic
    assert levels.max() <= 1.001 and (levels > 0.5).mean() < (0.1 if resample == 2 else 0.01)


def test_jpeg_decodes_close_to_pillow(pipelines, exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    pipeline, runtime = PipelineModel.from_prefix(pipelines[family]), ZeroShotModel.from_onnx(exported[family])
    for data in [png(smooth(120, 160), fmt="JPEG", quality=95), png(smooth(80, 80), "L", fmt="JPEG", quality=95)]:
        got, want = pipeline.embed_image(data), runtime.embed_images([data])
        assert cosine_rows(got, want).min() >= 0.99


BAD_BYTES = {
    "garbage": b"this is not an image at all, just text bytes",
    "short": b"\xff\xd8",
    "truncated_jpeg": None,
    "gif": b"GIF89a" + b"\x00" * 40,
}


def _bad(name: str) -> bytes:
    if name == "truncated_jpeg":
        data = png(smooth(64, 64), fmt="JPEG")
        return data[: len(data) // 2]
    return BAD_BYTES[name]


@pytest.mark.slow
def test_raw_graph_errors_instead_of_exiting(pipelines, tmp_path):
    """Run in a child process: without the guard libjpeg would exit() on garbage and hang on a truncated JPEG."""
    import subprocess
    import sys

    from clipforge.pipeline.image_graph import DECODE_NODE
    from clipforge.pipeline.text_graph import EMPTY_NODE

    for name in BAD_BYTES:
        (tmp_path / name).write_bytes(_bad(name))
    script = f"""
import sys, numpy as np, onnxruntime as ort
from onnxruntime_extensions import get_library_path
def session(path):
    o = ort.SessionOptions(); o.register_custom_ops_library(get_library_path()); o.log_severity_level = 4
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
img, txt = session("{pipelines["clip"]}_img.onnx"), session("{pipelines["clip"]}_txt.onnx")
for name in {list(BAD_BYTES)!r}:
    try:
        img.run(None, {{"image": np.fromfile(r"{tmp_path}/" + name, dtype=np.uint8)}}); print(name, "NO ERROR")
    except Exception as exc:
        print(name, str(exc).replace("\\n", " "))
try:
    txt.run(None, {{"text": np.array([], dtype=object)}}); print("empty NO ERROR")
except Exception as exc:
    print("empty", str(exc).replace("\\n", " "))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    for name in BAD_BYTES:
        assert DECODE_NODE in lines[name], (name, lines[name])
    assert EMPTY_NODE in lines["empty"]


def test_pipeline_model_errors(pipelines):
    from clipforge.errors import InputError

    pipeline = PipelineModel.from_prefix(pipelines["clip"])
    corrupt = bytearray(png(smooth(64, 64), fmt="JPEG"))
    corrupt[200:400] = b"\xff" * 200  # complete file (start and end markers), garbage inside
    for data, message in [
        (_bad("garbage"), "not a PNG or JPEG"),
        (_bad("truncated_jpeg"), "truncated JPEG"),
        (bytes(corrupt), "corrupt JPEG"),
        (_bad("gif"), "not a PNG or JPEG"),
    ]:
        with pytest.raises(InputError, match=message):
            pipeline.embed_image(data)
    with pytest.raises(InputError, match="empty"):
        pipeline.embed_texts([])
    with pytest.raises(InputError, match="strings"):
        pipeline.embed_texts(["ok", 3])
    with pytest.raises(InputError, match="uint8"):
        pipeline.embed_pixels(np.zeros((4, 4, 3), np.float32))
    truncated_png = png(smooth(64, 64))[:300]
    with pytest.raises(InputError, match="refused"):
        pipeline.embed_image(truncated_png)


@pytest.mark.slow
def test_presets_follow_the_family_and_can_be_overridden(tiny_clip, tmp_path, capsys):
    assert main(["export-pipeline", str(tiny_clip), "-o", str(tmp_path / "x"), "--preset", "multimodal_siglip"]) == 2
    assert "preset multimodal_siglip is for siglip checkpoints but" in capsys.readouterr().err
    assert main(["export-pipeline", str(tiny_clip), "-o", str(tmp_path / "x"), "--template", "nope"]) == 2
    assert (
        "unknown pipeline preset 'nope'; use one of: multimodal_clip, multimodal_metaclip2, multimodal_openclip, "
        "multimodal_siglip" in capsys.readouterr().err
    )
    assert main(["export-pipeline", str(tiny_clip), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "prefix" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    from clipforge.pipeline.export_graphs import resolve_config

    config = resolve_config("openai/clip-vit-base-patch32", None)  # a known hub id: no download needed
    assert config.preset == "multimodal_clip" and config.image_inputs == ("bytes", "pixels")
    assert resolve_config("someone/unknown-model", None) is None  # decided from its export's manifest
    assert PipelineConfig.for_model(str(tiny_clip), "clip").preset == "multimodal_clip"


def test_every_known_checkpoint_gets_its_family_preset():
    from clipforge.errors import InputError
    from clipforge.pipeline.export_graphs import resolve_config

    families = set()
    for row in list_models():  # open_clip ids (hf-hub:..., ARCH:FILE) included: known before any export
        if row["family"] == "siglip2":  # NaFlex: no fixed-size in-graph pre-processing, refused in one line
            with pytest.raises(InputError, match="is SigLIP 2 NaFlex"):
                resolve_config(row["name"], None)
            continue
        config = resolve_config(row["name"], None)
        assert config.preset == f"multimodal_{row['family']}" and config.family == row["family"], row["name"]
        families.add(row["family"])
    assert "openclip" in families
    assert list_presets() == {
        "multimodal_clip": "clip",
        "multimodal_metaclip2": "metaclip2",
        "multimodal_openclip": "openclip",
        "multimodal_siglip": "siglip",
    }
    with pytest.raises(InputError, match="multimodal_openclip is for openclip checkpoints"):
        resolve_config("openai/clip-vit-base-patch32", "multimodal_openclip")


@pytest.mark.slow
def test_existing_output_needs_force(pipelines, exported, tmp_path, capsys):
    prefix = tmp_path / "p"
    (tmp_path / "p_txt.onnx").write_text("keep me")
    args = ["export-pipeline", str(exported["siglip"]), "-o", str(prefix), "-q"]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "p_txt.onnx").read_text() == "keep me"
    assert main(args + ["--force"]) == 0
    assert PipelineModel.from_prefix(prefix).embed_texts(["a cat"]).shape[0] == 1


def test_opset_upgrade():
    from onnx import TensorProto, helper

    from clipforge.pipeline.compose import at_opset

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, None])
    for op, attrs in [("ReduceMean", {"axes": [1], "keepdims": 1}), ("Relu", {})]:
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g", [x], [y])
        model = at_opset(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
        assert model.opset_import[0].version == 18
        onnx.checker.check_model(model)
        out = extensions_session(model).run(None, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})[0]
        assert out.shape == ((2, 1) if op == "ReduceMean" else (2, 3))


@pytest.mark.slow
def test_minimal_example_runs_without_clipforge(pipelines, exported, tiny_checkpoint, tmp_path):
    """examples/pipeline_minimal.py: onnxruntime + extensions + numpy only; scores as ZeroShotModel.classify.
    (``import onnxruntime_extensions`` itself imports transformers and torch when they are installed, as here, so
    only clipforge's absence is checked.)"""
    import subprocess
    import sys
    from pathlib import Path

    family, _ = tiny_checkpoint
    script = Path(__file__).parents[1] / "examples" / "pipeline_minimal.py"
    image = tmp_path / "photo.png"
    image.write_bytes(png(smooth(70, 90, seed=5)))
    labels = ["a red circle", "a blue square", "a dog"]
    runner = (
        f"import runpy, sys; sys.argv = {[str(script), str(pipelines[family]), str(image), *labels]!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print('IMPORTED', 'clipforge' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    *rows, imported = done.stdout.strip().splitlines()
    assert imported == "IMPORTED False"
    got = {line.split("  ", 1)[1]: float(line.split("  ", 1)[0]) for line in rows}
    want = ZeroShotModel.from_onnx(exported[family]).classify(
        [image], labels, template="a photo of {}.", top_k=len(labels)
    )[0]
    assert list(got) == [p["label"] for p in want]
    assert max(abs(got[p["label"]] - p["score"]) for p in want) <= 1e-3


def test_pipeline_model_is_torch_free(pipelines):
    """PipelineModel loads the extensions' library by path, so neither torch nor transformers gets imported."""
    import subprocess
    import sys

    code = (
        f"import sys; from clipforge.pipeline import PipelineModel; "
        f"m = PipelineModel.from_prefix(r'{pipelines['clip']}'); m.embed_texts(['a cat']); "
        "import numpy as np; m.embed_pixels(np.zeros((20, 30, 3), np.uint8)); "
        "print(sorted(x for x in ('torch', 'transformers', 'onnxruntime_extensions') if x in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip() == "[]"


BLOCK_ONNX = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnx", "torch", "transformers"):
            raise ImportError(f"{name} is blocked: not installed by clipforge[extensions]")
sys.meta_path.insert(0, Block())
import numpy as np
from clipforge.pipeline import PipelineModel
model = PipelineModel.from_prefix(sys.argv[1])
print(model.classify(sys.argv[2], ["a red circle", "a dog"], top_k=1)[0]["label"])
"""


def test_pipeline_model_imports_and_classifies_without_onnx(pipelines, exported, tmp_path):
    """clipforge[extensions] has no onnx: importing PipelineModel used to fail through image_graph.py."""
    import subprocess
    import sys

    image = tmp_path / "photo.png"
    image.write_bytes(png(smooth(40, 50, seed=2)))
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_ONNX, str(pipelines["clip"]), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-800:]
    want = ZeroShotModel.from_onnx(exported["clip"]).classify([image], ["a red circle", "a dog"], top_k=1)[0][0][
        "label"
    ]
    assert done.stdout.strip() == want


def test_pipeline_from_an_int8_build(tiny_clip, tmp_path):
    """A built (quantized) folder gives int8 pipelines, validated against the runtime on the same build."""
    from clipforge.builder import build_composite
    from clipforge.pipeline import export_pipeline

    built = build_composite(tiny_clip, tmp_path / "int8", quantize="int8-dynamic", show_progress=False).path
    result = export_pipeline(built, tmp_path / "q", "multimodal_clip", show_progress=False)
    ops = {n.op_type for n in onnx.load(str(result.paths["image"])).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    pipeline, runtime = PipelineModel.from_prefix(tmp_path / "q"), ZeroShotModel.from_onnx(built)
    texts = ["a red circle", "a photo of a dog."]
    assert cosine_rows(pipeline.embed_texts(texts), runtime.embed_texts(texts)).min() >= 0.9999
    data = png(smooth(60, 80))
    assert cosine_rows(pipeline.embed_image(data), runtime.embed_images([data])).min() >= 0.999


def test_large_model_layout_and_failed_validation_leave_nothing(exported, tmp_path, monkeypatch):
    """Over the 2 GiB limit the weights go to PREFIX_*.onnx.data; a failed validation leaves no file at all."""
    from clipforge.errors import ValidationError
    from clipforge.export import onnx_export
    from clipforge.pipeline import checks, export_pipeline

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)  # treat the tiny model as "over 2 GB"
    result = export_pipeline(exported["clip"], tmp_path / "ok" / "big", "multimodal_clip", show_progress=False)
    names = sorted(p.name for p in (tmp_path / "ok").iterdir())
    graphs = [p.name for p in result.paths.values()]
    assert names == sorted(graphs + [g + ".data" for g in graphs] + ["big_pipeline.json"])
    assert PipelineModel.from_prefix(tmp_path / "ok" / "big").embed_texts(["a cat"]).shape[0] == 1

    def fail(*args, **kwargs):
        raise ValidationError("pipeline export", ["injected failure"])

    monkeypatch.setattr(checks, "validate_pipeline", fail)
    with pytest.raises(ValidationError):
        export_pipeline(exported["clip"], tmp_path / "bad" / "big", "multimodal_clip", show_progress=False)
    assert list((tmp_path / "bad").iterdir()) == []


def test_pipeline_and_classifier_from_an_fp16_build(tiny_siglip, tmp_path):
    """fp16 builds keep float32 I/O through Cast nodes that onnxconverter puts last; both exports sort the graph."""
    from clipforge.builder import build_composite
    from clipforge.pipeline import export_pipeline
    from clipforge.pipeline.classifier import export_classifier

    built = build_composite(tiny_siglip, tmp_path / "fp16", quantize="fp16", show_progress=False).path
    export_pipeline(built, tmp_path / "h", "multimodal_siglip", show_progress=False)
    data = png(smooth(60, 80))
    got = PipelineModel.from_prefix(tmp_path / "h").embed_image(data)
    assert cosine_rows(got, ZeroShotModel.from_onnx(built).embed_images([data])).min() >= 0.999
    report = export_classifier(
        built, tmp_path / "clf.onnx", ["red circle", "blue square"], ["a photo of a {}."], with_preprocessing=True
    )
    assert report["atol"] == 1e-3 and report["max_abs_diff"] <= 1e-3


def test_topological_sort_fixes_node_order():
    from onnx import TensorProto, helper

    from clipforge.pipeline.compose import topological_sort

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [
        helper.make_node("Relu", ["b"], ["y"]),
        helper.make_node("Neg", ["a"], ["b"]),
        helper.make_node("Abs", ["x"], ["a"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    topological_sort(model.graph)
    assert [n.op_type for n in model.graph.node] == ["Abs", "Neg", "Relu"]
    onnx.checker.check_model(model)
    out = extensions_session(model).run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0]
    np.testing.assert_array_equal(out, [0.0, 0.0])


def test_cmyk_jpeg_is_refused_by_name(pipelines):
    from clipforge.errors import InputError
    from clipforge.pipeline.image_graph import CHANNELS_NODE

    buffer = io.BytesIO()
    Image.fromarray(smooth(40, 50)).convert("CMYK").save(buffer, "JPEG")
    data = buffer.getvalue()
    with pytest.raises(InputError, match="CMYK JPEG"):
        PipelineModel.from_prefix(pipelines["clip"]).embed_image(data)
    raw = extensions_session(f"{pipelines['clip']}_img.onnx", quiet=True)
    with pytest.raises(Exception, match=CHANNELS_NODE):
        raw.run(None, {"image": np.frombuffer(data, np.uint8)})


def test_exif_rotated_photo_is_turned_upright_like_the_runtime(pipelines, exported):
    """The graph's decoder ignores EXIF; PipelineModel turns such photos upright first, as HF's load_image does."""
    array = smooth(40, 90, seed=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    data = buffer.getvalue()
    pipeline, runtime = PipelineModel.from_prefix(pipelines["clip"]), ZeroShotModel.from_onnx(exported["clip"])
    want = runtime.embed_images([data])
    assert cosine_rows(pipeline.embed_image(data), want).min() >= 0.999
    raw = extensions_session(f"{pipelines['clip']}_img.onnx", quiet=True)
    sideways = raw.run(None, {"image": np.frombuffer(data, np.uint8)})[0]
    assert cosine_rows(sideways, want).min() < cosine_rows(pipeline.embed_image(data), want).min()


def test_pipeline_classify_matches_runtime(pipelines, exported, tiny_checkpoint):
    """PipelineModel.classify: the text graph's metadata (scale, SigLIP bias) and an averaged ensemble."""
    family, _ = tiny_checkpoint
    labels, templates = ["red circle", "blue square", "a dog"], ["a photo of a {}.", "a drawing of a {}."]
    data = png(smooth(50, 70, seed=4))
    got = PipelineModel.from_prefix(pipelines[family]).classify(data, labels, templates, top_k=3)
    want = ZeroShotModel.from_onnx(exported[family]).classify([data], labels, templates, top_k=3)[0]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert max(abs(g["score"] - w["score"]) for g, w in zip(got, want)) <= 1e-3
    if family == "clip":
        assert abs(sum(g["score"] for g in got) - 1.0) < 1e-5
