"""SigLIP 2 NaFlex (``Siglip2Model``): a tiny model made locally exports, validates against PyTorch at patch
budgets 64 and 256 with three aspect ratios (1:1, 3:1, 1:4) in one padded batch; the torch-free pre-processing
equals ``Siglip2ImageProcessor``'s (PIL backend) bit for bit; the budget is the manifest's default and a
load/request option (Python, CLI, HTTP, the index's model record) that other models refuse in one line; int8
builds, classify, index + search and serve work on it."""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from clipforge.errors import InputError
from clipforge.export import ExportOptions, export_model
from clipforge.export.cases import NAFLEX_ASPECTS
from clipforge.export.samples import odd_images
from clipforge.families.siglip2 import naflex_image_spec
from clipforge.runtime import cpu
from clipforge.runtime.images import preprocess
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.patches import naflex_size, with_max_patches
from clipforge.specs import Manifest

LABELS = ["a red circle", "a blue square", "a green star"]


def _processor(max_num_patches: int = 64, patch_size: int = 8):
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

    return Siglip2ImageProcessorPil(patch_size=patch_size, max_num_patches=max_num_patches, do_convert_rgb=True)


def _mixed(seed: int = 0) -> list[Image.Image]:
    """One image per aspect ratio (width:height 1:1, 3:1, 1:4), noise."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for size in NAFLEX_ASPECTS]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def naflex_folder(exported_tiny):
    return exported_tiny["siglip2"]


@pytest.fixture(scope="module")
def naflex_model(naflex_folder):
    return ZeroShotModel.from_onnx(naflex_folder, threads=1)


# --- pre-processing -------------------------------------------------------------------------------------------
def test_resize_target_equals_the_processors_search():
    from transformers.models.siglip2.image_processing_pil_siglip2 import get_image_size_for_max_num_patches

    rng = np.random.default_rng(1)
    sizes = [(1, 1), (1, 5000), (5000, 1), (7, 3), (224, 224), (3000, 4000), *rng.integers(1, 2500, (30, 2))]
    for height, width in sizes:
        for patch, budget in ((16, 256), (16, 576), (14, 1024), (8, 64), (8, 1)):
            want = get_image_size_for_max_num_patches(int(height), int(width), patch, budget)
            assert naflex_size(int(height), int(width), patch, budget) == want, (height, width, patch, budget)


@pytest.mark.parametrize("budget", [1, 16, 64, 256, 576])
def test_preprocessing_equals_siglip2_image_processor_bit_for_bit(budget):
    """Every odd image (sizes down to 1x1 and 1x300, every PIL mode), alone and in one mixed batch: the patches,
    the mask and the grid shapes are equal to the processor's."""
    processor = _processor(budget)
    spec = naflex_image_spec(processor)
    images = odd_images()
    batches = [[image] for image in images] + [images[:12], _mixed()]
    for batch in batches:
        want = processor(images=batch, return_tensors="np")
        got = preprocess(batch, spec).feed()
        for name, array in got.items():
            assert array.shape == np.asarray(want[name]).shape, name
            assert np.array_equal(array, np.asarray(want[name])), (name, batch[0].mode, batch[0].size)


def test_budget_option_is_refused_in_one_line_for_fixed_size_models():
    spec = naflex_image_spec(_processor())
    for bad in (0, -3, 2.5, True, 10**9):
        with pytest.raises(InputError, match="whole number from 1 to"):
            with_max_patches(spec, bad)
    fixed = replace(spec, resize_mode="exact", size=(224, 224))
    with pytest.raises(InputError, match=r"^max_patches=64 applies to SigLIP 2 NaFlex models .* 224x224 images"):
        with_max_patches(fixed, 64)
    assert with_max_patches(fixed, None) is fixed


# --- export and validation ------------------------------------------------------------------------------------
def _torch_image_features(checkpoint, images, budget: int) -> np.ndarray:
    import torch
    from transformers import AutoImageProcessor, Siglip2Model

    model = Siglip2Model.from_pretrained(checkpoint).eval()
    inputs = AutoImageProcessor.from_pretrained(checkpoint, backend="pil")(
        images=images, return_tensors="pt", max_num_patches=budget
    )
    with torch.no_grad():
        out = model.get_image_features(**inputs).pooler_output.numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.slow
def test_export_validates_two_budgets_with_three_aspect_ratios_in_one_batch(naflex_folder):
    manifest = Manifest.load(naflex_folder)
    assert manifest.family == "siglip2"
    assert (manifest.image.resize_mode, manifest.image.patch_size, manifest.image.max_patches) == ("naflex", 8, 64)
    cases = manifest.validation["image-encoder"]["cases"]
    assert [c["input_shape"] for c in cases] == [[1, 64, 192], [3, 64, 192], [1, 256, 192], [3, 256, 192]]
    assert max(c["max_abs_diff"] for c in cases) <= 1e-4
    assert manifest.validation["text-encoder"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("budget", [64, 256])
def test_runtime_embeddings_equal_pytorch_on_a_mixed_batch(naflex_model, tiny_checkpoints, budget):
    """From PIL images to embeddings with no torch (pre-processing + ONNX) against HF's processor +
    ``Siglip2Model.get_image_features``: one batch holding the three aspect ratios, padded differently."""
    images = _mixed(seed=budget)
    got = naflex_model.embed_images(images, max_patches=budget)
    want = _torch_image_features(tiny_checkpoints["siglip2"], images, budget)
    assert np.abs(got - want).max() <= 1e-4
    other = naflex_model.embed_images(images, max_patches=16)
    assert np.abs(other - got).max() > 1e-3  # the budget changes what the model sees
    from transformers import AutoImageProcessor  # the HF drop-in: the processor's three tensors as keywords

    inputs = AutoImageProcessor.from_pretrained(tiny_checkpoints["siglip2"], backend="pil")(
        images=images, return_tensors="pt", max_num_patches=budget
    )
    assert np.abs(naflex_model(**inputs).image_embeds.numpy() - want).max() <= 1e-4


@pytest.mark.slow
def test_export_budget_is_recorded_and_shapes_options_are_refused(tiny_checkpoints, tmp_path):
    checkpoint = tiny_checkpoints["siglip2"]
    out = export_model(checkpoint, tmp_path / "b100", ExportOptions(max_patches=100), show_progress=False).path
    assert Manifest.load(out).image.max_patches == 100
    assert ZeroShotModel.from_onnx(out, max_patches=32).manifest.image.max_patches == 32
    for options in (ExportOptions(static=True), ExportOptions(image_size=64)):
        with pytest.raises(InputError, match="NaFlex .* dynamic shapes only"):
            export_model(checkpoint, tmp_path / "bad", options, show_progress=False)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InputError, match="max_patches=64 applies to SigLIP 2 NaFlex"):
        export_model(tiny_checkpoints["clip"], tmp_path / "clip", ExportOptions(max_patches=64), show_progress=False)


# --- downstream: build, classify, index, serve -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8-dynamic", "int8-static", "bf16"])
def test_builds_run_at_any_budget(naflex_folder, naflex_model, tmp_path, mode):
    """int8 builds quantise the MatMuls (calibration feeds the three NaFlex inputs, at the budget, its half and its
    quarter); bf16 runs on OpenVINO with the dynamic patch axis; cosine to fp32 at budgets 16 and 256 at least 0.99
    (int8-static: 0.98; 0.87 at 16 patches when it was calibrated at the budget alone)."""
    from clipforge.builder import build_composite

    if mode == "bf16":
        pytest.importorskip("openvino")
        if not cpu.has_bf16():
            pytest.skip(f"this CPU ({cpu.cpu_model()}) has no AVX512-BF16/AMX-BF16: bf16 builds are refused up front")
    out = tmp_path / mode
    build_composite(naflex_folder, out, quantize=mode, show_progress=False)
    stage = Manifest.load(out).build["roles"]["image-encoder"]["stages"][0]
    assert stage["stage"] == f"quantize:{mode}"
    if mode.startswith("int8"):
        assert stage["ops"].get("MatMulInteger", 0) + stage["ops"].get("DequantizeLinear", 0) > 0
    built = ZeroShotModel.from_onnx(out, threads=1)
    for budget in (16, 256):
        images = _mixed()
        cosine = (
            built.embed_images(images, max_patches=budget) * naflex_model.embed_images(images, max_patches=budget)
        ).sum(1)
        assert cosine.min() > (0.98 if mode == "int8-static" else 0.99), (budget, cosine)


@pytest.mark.slow
def test_classify_cli_with_a_budget_equals_the_library(naflex_folder, naflex_model, exported_tiny, tmp_path, capsys):
    from clipforge.cli.main import main

    paths = []
    for i, image in enumerate(_mixed(seed=5)):
        paths.append(tmp_path / f"img{i}.png")
        image.save(paths[-1])
    args = ["classify", *map(str, paths), "-m", str(naflex_folder), "-l", ",".join(LABELS), "--json", "-k", "3"]
    capsys.readouterr()
    assert main([*args, "--max-patches", "32"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = naflex_model.classify([str(p) for p in paths], LABELS, top_k=3, max_patches=32)
    for row, expected in zip(got, want):
        assert [p["label"] for p in row["predictions"]] == [p["label"] for p in expected]
        np.testing.assert_allclose([p["score"] for p in row["predictions"]], [p["score"] for p in expected], atol=1e-5)
    assert main(["classify", str(paths[0]), "-m", str(exported_tiny["clip"]), "-l", "a,b", "--max-patches", "32"]) == 2
    err = capsys.readouterr().err
    assert "--max-patches 32 applies to SigLIP 2 NaFlex models" in err and "Traceback" not in err


@pytest.mark.slow
def test_index_records_the_budget_and_searches(naflex_folder, naflex_model, tmp_path):
    from clipforge.index import Index

    photos = tmp_path / "photos"
    photos.mkdir()
    images = _mixed(seed=7)
    for i, image in enumerate(images):
        image.save(photos / f"p{i}.png")
    db = tmp_path / "naflex.db"
    with Index(db, str(naflex_folder), max_patches=32) as idx:
        assert idx.add(photos).added == 3
        assert idx.record.preprocessing["max_patches"] == 32
        hits = idx.search("a red circle", k=3)
        assert len(hits) == 3
    with Index(db) as idx:  # the recorded model, at the recorded budget
        assert idx.model.manifest.image.max_patches == 32
        assert [h.path for h in idx.search("a red circle", k=3)] == [h.path for h in hits]
        query = idx.search(image=images[1], k=1)
        assert query[0].path.endswith("p1.png") and query[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="indexed at max_patches=32 .* not 64; use max_patches=32"):
        Index(db, str(naflex_folder), max_patches=64)
    with pytest.raises(InputError, match="indexed at max_patches=32 .* not 64"):  # a loaded model at its budget
        Index(db, naflex_model)
    with Index(db, ZeroShotModel.from_onnx(naflex_folder, max_patches=32)) as idx:
        assert idx.count() == 3


@pytest.mark.slow
def test_serve_takes_a_budget_per_call(naflex_model, exported_tiny):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from clipforge.serve import create_app

    images = _mixed(seed=9)
    blobs = [base64.b64encode(_png(image)).decode() for image in images]
    with TestClient(create_app(naflex_model)) as client:
        _wait_ready(client)
        for budget in (16, 256, None):
            body = {"input": blobs, "modality": "image"} | ({"max_patches": budget} if budget else {})
            reply = client.post("/v1/embeddings", json=body)
            assert reply.status_code == 200, reply.text
            got = [d["embedding"] for d in sorted(reply.json()["data"], key=lambda d: d["index"])]
            np.testing.assert_allclose(got, naflex_model.embed_images(images, max_patches=budget), atol=1e-5)
        body = {"images": blobs, "labels": LABELS, "max_patches": 32}
        reply = client.post("/v1/classify", json=body)
        assert reply.status_code == 200, reply.text
        want = naflex_model.classify(images, LABELS, top_k=3, max_patches=32)
        assert [[p["label"] for p in row] for row in reply.json()["results"]] == [[p["label"] for p in r] for r in want]
        for bad in (0, 10**6, "many"):
            reply = client.post("/v1/embeddings", json={"input": blobs[:1], "modality": "image", "max_patches": bad})
            assert reply.status_code == 422 and "max_patches" in reply.text
    with TestClient(create_app(ZeroShotModel.from_onnx(exported_tiny["clip"], threads=1))) as client:
        _wait_ready(client)
        reply = client.post("/v1/embeddings", json={"input": blobs[:1], "modality": "image", "max_patches": 64})
        assert reply.status_code == 422
        assert reply.json()["error"]["field"] == "max_patches" and "NaFlex" in reply.json()["error"]["message"]


def _wait_ready(client) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("patches", [16, 64, 256, 576])
def test_roofline_flops_are_counted_per_budget(naflex_folder, patches):
    """The graph's matmul FLOPs at a budget equal the tiny model's count by hand: patch embedding, the resized
    position grid (16 positions), 2 layers (projections, attention N x N, MLP), the pooling head."""
    from clipforge.perf.roofline import flops_per_item

    n, d, m, p, grid, layers = patches, 32, 64, 3 * 8 * 8, 16, 2
    layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * m
    head = d * d + 2 * n * d * d + 2 * n * d + d * d + 2 * d * m
    macs = n * p * d + n * grid * d + layers * layer + head
    assert flops_per_item(naflex_folder / "image-encoder" / "model.onnx", patches=patches) == 2 * macs


@pytest.mark.slow
def test_in_graph_pipelines_refuse_naflex_in_one_line(naflex_folder, tmp_path, capsys):
    from clipforge.cli.main import main

    for command in (["export-pipeline"], ["export-classifier", "--labels", "a,b"]):
        capsys.readouterr()
        assert main([command[0], str(naflex_folder), "-o", str(tmp_path / "out"), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert "is SigLIP 2 NaFlex (a patch budget per image)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_with_the_pytorch_baseline(naflex_folder, tiny_checkpoints, tmp_path, capsys):
    """``clipforge eval --baseline torch`` on a two-class image folder: the ONNX model and ``Siglip2Model`` (fed
    the processor's patches, mask and grid shapes) predict the same class for every image."""
    from clipforge.cli.main import main

    for label, seed in (("circle", 1), ("square", 2)):
        (tmp_path / "data" / "test" / label).mkdir(parents=True)
        for i, image in enumerate(_mixed(seed)):
            image.save(tmp_path / "data" / "test" / label / f"{i}.png")
    args = ["eval", "-m", str(naflex_folder), "--dataset", str(tmp_path / "data"), "--json", str(tmp_path / "r.json")]
    assert main([*args, "--baseline", "torch", "--model-id", str(tiny_checkpoints["siglip2"])]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["agreement"] == 100.0, report  # per cent


@pytest.mark.slow
def test_batches_of_different_budgets_join_without_changing_embeddings(naflex_model):
    """What the server does when requests with different budgets share an encoder run: the smaller batch is padded
    to the larger one's patch count; its embeddings stay those of its own run (padding patches are masked)."""
    from clipforge.runtime.patches import Patches

    images = _mixed(seed=3)
    small, large = naflex_model.preprocess(images, max_patches=16), naflex_model.preprocess(images[:2], max_patches=256)
    joined = naflex_model.encode_pixels(Patches.concat([small, large]))
    assert joined.shape == (5, naflex_model.manifest.embed_dim)
    np.testing.assert_allclose(joined[:3], naflex_model.encode_pixels(small), atol=1e-5)
    np.testing.assert_allclose(joined[3:], naflex_model.encode_pixels(large), atol=1e-5)
