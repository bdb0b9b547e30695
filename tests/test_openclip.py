"""open_clip sources end to end: exports validated against open_clip's own encode_image/encode_text (recomputed
here with open_clip, not taken from the manifest), runtime token ids equal to open_clip's tokenizer, runtime pixels
equal to open_clip's torchvision transform, the torchvision workaround, and the source forms every command takes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clipforge.errors import InputError, ModelNotFoundError
from clipforge.export.exporter import ExportOptions, export_model
from clipforge.hub import OpenClipSource, openclip_source
from clipforge.registry import family_for_checkpoint, get_family
from clipforge.runtime.images import preprocess
from clipforge.runtime.model import ZeroShotModel
from clipforge.testing.tiny_openclip import model_config, random_model, save_hub_layout, save_openai_file

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from test_images import MODES, SIZES, _image  # noqa: E402
from test_text import CORPUS, _random_texts  # noqa: E402


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """name -> (source string, the open_clip model it must equal)."""
    root = tmp_path_factory.mktemp("openclip-sources")
    vit, resnet = random_model(model_config("vit"), seed=1), random_model(model_config("resnet"), seed=2)
    pre = {"interpolation": "bilinear", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    return {
        "vit-hub": (str(save_hub_layout(vit, model_config("vit"), root / "vit", pre)), vit),
        "resnet-hub": (str(save_hub_layout(resnet, model_config("resnet"), root / "rn")), resnet),
        "resnet-openai-file": (str(save_openai_file(resnet, root / "RN-tiny.pt")), resnet),
    }


@pytest.fixture(scope="module")
def exported(sources, tmp_path_factory):
    root = tmp_path_factory.mktemp("openclip-exports")
    return {name: export_model(src, root / name, show_progress=False).path for name, (src, _) in sources.items()}


@pytest.mark.parametrize("name", ["vit-hub", "resnet-hub", "resnet-openai-file"])
@pytest.mark.slow
def test_export_matches_open_clip(name, sources, exported):
    """ONNX through the runtime (its own pre-processing and tokenizer) vs open_clip's model, transform and
    tokenizer, batch sizes 1 and 3, prompts of different lengths."""
    source, reference = sources[name]
    if name.endswith("openai-file"):  # open_clip's OpenAI loader rounds the weights through fp16, as OpenAI's are
        reference = open_clip.load_openai_model(source, precision="fp32", device="cpu")
    model = ZeroShotModel.from_onnx(exported[name])
    assert model.manifest.family == "openclip" and model.manifest.text.kind == "openclip"
    arch = "resnet" if "resnet" in name else "transformer"
    assert model.manifest.towers["image-encoder"]["arch"] == arch
    tokenizer = open_clip.get_tokenizer(f"local-dir:{source}") if "hub" in name else open_clip.SimpleTokenizer()
    _, _, transform = open_clip.create_model_and_transforms(
        f"local-dir:{source}" if "hub" in name else "RN50", pretrained=None
    )
    if "hub" not in name:  # an OpenAI file: the default preprocess at the model's size
        transform = open_clip.image_transform(model.manifest.image.size[0], is_train=False)
    images = [_image("RGB", (40 + 7 * i, 90 - 11 * i), seed=i) for i in range(3)]
    texts = ["a photo of a cat.", "dog", "Two people riding bicycles along a river in the city at night!"]
    for n in (1, 3):
        with torch.no_grad():
            want_img = reference.encode_image(torch.stack([transform(im) for im in images[:n]])).numpy()
            want_txt = reference.encode_text(tokenizer(texts[:n])).numpy()
        got_img = model.image_encoder({"pixel_values": model.preprocess(images[:n])})
        ids = model.tokenizer.encode(texts[:n]).input_ids
        got_txt = model.text_encoder({"input_ids": ids})
        np.testing.assert_allclose(got_img, want_img, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got_txt, want_txt, atol=1e-4, rtol=0)
    assert model.manifest.validation["image-encoder"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_token_ids_equal_open_clip(exported):
    reference = open_clip.SimpleTokenizer()
    tok = ZeroShotModel.from_onnx(exported["resnet-hub"]).tokenizer
    texts = (
        CORPUS
        + _random_texts(seed=3, count=200, max_parts=25)
        + [
            "&amp;lt;b&amp;gt; html &quot;twice&quot;",
            "mojibake: cafÃ© rÃ©sumÃ©",
            "<end_of_text> literal <START_OF_TEXT>",
            "ﬁ\u0085next\u2028line\u001c sep",
            "x!<end_of_text>y",
        ]
    )
    assert tok.encode(texts).input_ids.tolist() == reference(texts).tolist()
    for text in texts[:25]:  # one at a time too
        assert tok.encode([text]).input_ids.tolist() == reference([text]).tolist()


@pytest.mark.slow
def test_tokenizer_runtime_is_torch_free(exported):
    code = (
        f"from clipforge.runtime.model import ZeroShotModel; import sys; "
        f"m = ZeroShotModel.from_onnx({str(exported['vit-hub'])!r}); m.embed_texts(['a cat']); "
        f"m.embed_images([__import__('PIL.Image').Image.new('RGB', (40, 30))]); "
        f"print(sorted(k for k in ('torch', 'torchvision', 'open_clip', 'transformers') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- pixels: open_clip's transform over the image sizes/modes of test_images.py --------------------------------
TRANSFORMS = [
    ("shortest-bicubic-32", {"size": 32}),
    ("shortest-bilinear-224", {"size": 224, "interpolation": "bilinear"}),
    ("shortest-nonsquare", {"size": (24, 40)}),
    ("squash-37x64", {"size": (37, 64), "resize_mode": "squash"}),
    ("longest-fill-128", {"size": 48, "resize_mode": "longest", "fill_color": 128}),
    ("longest-fill-0-nonsquare", {"size": (30, 50), "resize_mode": "longest"}),
]


def _spec_and_transform(cfg: dict):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from clipforge.families.openclip_io import image_spec_from_cfg

    full = {**PreprocessCfg().__dict__, **cfg}
    return image_spec_from_cfg(full), image_transform_v2(PreprocessCfg(**full), is_train=False)


@pytest.mark.parametrize("name,cfg", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_pixels_identical_to_open_clip_transform(name, cfg):
    spec, transform = _spec_and_transform(cfg)
    images = [_image("RGB", size, seed=sum(size)) for size in SIZES]
    images += [_image(mode, (33, 47), seed=3) for mode in MODES if mode not in ("I", "F", "I;16")]
    for image in images:
        try:
            want = transform(image).numpy()[None]
        except ValueError:  # open_clip cannot resize a 1-pixel-thin image to fit the long side: neither can we
            with pytest.raises(InputError, match="too thin"):
                preprocess([image], spec)
            continue
        np.testing.assert_array_equal(preprocess([image], spec), want, err_msg=f"{image.mode} {image.size}")


def test_pixel_modes_open_clip_cannot_read_are_refused_or_match():
    """I, F and I;16 images: open_clip's ToTensor keeps their raw values; the runtime's result is compared too."""
    spec, transform = _spec_and_transform({"size": 32})
    for mode in ("I", "F", "I;16"):
        image = _image(mode, (40, 30), seed=5)
        want = transform(image).numpy()[None]
        np.testing.assert_array_equal(preprocess([image], spec), want, err_msg=mode)


# --- sources ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_source_forms(sources, tmp_path):
    hub, _ = sources["vit-hub"]
    weights, _ = sources["resnet-openai-file"]
    assert openclip_source(hub) == OpenClipSource(path=__import__("pathlib").Path(hub))
    assert openclip_source(f"local-dir:{hub}").path.samefile(hub)
    assert openclip_source(weights).arch is None
    assert openclip_source(f"RN50-quickgelu:{weights}").arch == "RN50-quickgelu"
    assert openclip_source("openai/clip-vit-base-patch32") is None and openclip_source(str(tmp_path)) is None
    assert family_for_checkpoint(hub) is get_family("openclip") is family_for_checkpoint(weights)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        openclip_source(f"RN50:{tmp_path / 'missing.pt'}")
    with pytest.raises(ModelNotFoundError, match="cannot download"):
        openclip_source("hf-hub:nobody/nothing-here")


@pytest.mark.slow
def test_arch_with_weights_file(sources, tmp_path):
    """ARCH:FILE builds ARCH as open_clip.create_model(ARCH, pretrained=FILE); a wrong ARCH is one line."""
    weights, _ = sources["resnet-openai-file"]
    bad = tmp_path / "x.pt"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="cannot load open_clip model"):
        export_model(f"RN50:{bad}", tmp_path / "o1", show_progress=False)
    with pytest.raises(InputError, match="not an open_clip architecture"):
        export_model(f"NoSuchArch:{weights}", tmp_path / "o2", show_progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_image_size_is_refused_for_resnet(sources, tmp_path):
    source, _ = sources["resnet-hub"]
    with pytest.raises(InputError, match="fixed image size"):
        export_model(source, tmp_path / "o", ExportOptions(image_size=96), show_progress=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_torchvision_workaround_is_guarded():
    """ensure_torchvision imports torchvision, patched only where the plain import fails (the rest of the suite
    imports transformers after conftest's ensure_torchvision, which fails without it in that case)."""
    code = (
        "try:\n import torchvision\n plain = True\nexcept RuntimeError:\n plain = False\n"
        "from clipforge._torchvision import ensure_torchvision as e\n"
        "state = e()\nimport torchvision.transforms\nprint(plain, state, e())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out in (["True", "plain", "plain"], ["False", "patched", "patched"])


@pytest.mark.slow
def test_import_guard_applies_the_workaround_for_any_entry_point():
    """A fresh process that imports clipforge and then transformers/open_clip directly (as the demo's training,
    evaluation baselines and benchmarks do) works whether or not torchvision imports on its own; importing
    clipforge alone imports no torch."""
    code = (
        "import sys, clipforge\nassert 'torch' not in sys.modules\n"
        "from transformers import CLIPModel\nimport open_clip\n"
        "from clipforge._torchvision import _state, _GUARD\nprint(_state, _GUARD in sys.meta_path)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.split() in (["plain", "False"], ["patched", "False"])


# --- downstream: every command takes the source itself --------------------------------------------------------
@pytest.mark.slow
def test_classifier_from_a_resnet_source(sources, exported, tmp_path):
    """export-classifier on the hub-layout ResNet folder itself: one graph, scores = ZeroShotModel.classify."""
    import onnxruntime as ort

    from clipforge.cli.main import main

    labels = ["red circle", "blue square", "a dog"]
    out = tmp_path / "clf.onnx"
    env_cache = tmp_path / "cache"
    source, _ = sources["resnet-hub"]
    assert main(["export-classifier", source, "-o", str(out), "-l", ",".join(labels)]) == 0
    model = ZeroShotModel.from_onnx(exported["resnet-hub"])
    images = [_image("RGB", (50 + 9 * i, 70), seed=i) for i in range(3)]
    scores, _ = ort.InferenceSession(str(out)).run(None, {"pixel_values": model.preprocess(images)})
    want = model.classify(images, labels, top_k=len(labels))
    for row, preds in zip(scores, want):
        for p in preds:
            assert abs(row[labels.index(p["label"])] - p["score"]) <= 1e-5
    assert not env_cache.exists()


@pytest.mark.slow
def test_classify_and_embed_commands_take_the_source(sources, tmp_path, monkeypatch, capsys):
    from clipforge.cli.main import main

    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "a.png"
    _image("RGB", (40, 40)).save(image)
    weights, _ = sources["resnet-openai-file"]
    assert main(["classify", str(image), "--labels", "cat,dog", "-m", weights, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and {p["label"] for p in rows[0]["predictions"]} <= {"cat", "dog"}
    assert main(["embed", str(image), "-o", str(tmp_path / "e.npy"), "-m", weights]) == 0
    assert np.load(tmp_path / "e.npy").shape == (1, 32)


# --- quantisation on a ResNet ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_resnet(fixture_cache, shapes_dataset):
    from clipforge.testing.trained_openclip import trained_resnet as build

    return build(fixture_cache)


@pytest.mark.slow
def test_int8_static_on_trained_resnet_within_1pp(trained_resnet, shapes_dataset, tmp_path):
    """The trained open_clip ModifiedResNet: int8-static (Convs quantised too) keeps zero-shot top-1 within 1 pp."""
    from test_build_accuracy import top1

    from clipforge.builder import build_composite

    fp32 = top1(export_model(trained_resnet, tmp_path / "fp32", show_progress=False).path, shapes_dataset)
    result = build_composite(
        trained_resnet,
        tmp_path / "int8",
        quantize="int8-static",
        calibration_data=shapes_dataset.folder("train"),
        show_progress=False,
    )
    int8 = top1(result.path, shapes_dataset)
    assert fp32 >= 60 and fp32 - int8 <= 1.0, (fp32, int8)
    stage = result.report["roles"]["image-encoder"]["stages"][0]
    assert stage["stage"] == "quantize:int8-static" and "Conv" in stage["op_types"]
    assert stage["ops"].get("QLinearConv", 0) + stage["ops"].get("DequantizeLinear", 0) > 0


@pytest.mark.slow
def test_export_pipeline_refuses_a_wrong_preset_up_front(sources, tmp_path, capsys):
    """open_clip sources get multimodal_openclip (tests/test_openclip_pipeline.py); another family's preset is
    refused before any export, leaving nothing behind."""
    from clipforge.cli.main import main

    source, _ = sources["resnet-hub"]
    assert main(["export-pipeline", source, "-o", str(tmp_path / "p"), "--preset", "multimodal_clip", "-q"]) == 2
    assert "is openclip; use multimodal_openclip" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_perf_feeds_open_clip_text_graphs_their_fixed_length(exported):
    from clipforge.perf.worker import _fixed_text_length

    assert _fixed_text_length(str(exported["vit-hub"] / "text-encoder" / "model.onnx")) == 77
