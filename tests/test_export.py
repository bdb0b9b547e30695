"""Export: layout, manifest, and ORT outputs vs transformers computed here (not with clipforge's validator)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from clipforge._io import sha256
from clipforge.cli.main import main
from clipforge.export import ExportOptions, export_model
from clipforge.testing.checkpoints import save_tiny_checkpoint

PROMPTS = [
    "cat",
    "a photo of a red circle.",
    "This is a much longer prompt, with punctuation; and more words!",
    "two dogs",
]


@pytest.fixture(scope="module")
def exported(hf_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    outs = {}
    for family, folder in hf_checkpoints.items():
        assert main(["export", str(folder), "-o", str(root / family), "-q"]) == 0
        outs[family] = root / family
    return outs


def _hf_text(folder, family, texts):
    tok = AutoTokenizer.from_pretrained(folder)
    if family == "siglip":  # SigLIP's text tower takes no mask (trained without one)
        enc = tok(texts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"]}
    return tok(texts, padding=True, truncation=True, return_tensors="pt")


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def test_layout_and_manifest(exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    out = exported[family]
    assert (out / "image-encoder" / "model.onnx").is_file()
    assert (out / "text-encoder" / "model.onnx").is_file()
    assert (out / "tokenizer.json").is_file() and (out / "preprocessor_config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family"] == family and manifest["opset"] == 17
    assert manifest["text"]["uses_attention_mask"] is (family == "clip")
    assert (manifest["logit_bias"] is None) is (family == "clip")
    for rel, digest in manifest["files"].items():
        assert sha256(out / rel) == digest
    assert manifest["validation"]["image-encoder"]["max_abs_diff"] < 1e-4
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_ort_matches_transformers(exported, tiny_checkpoint, batch):
    family, folder = tiny_checkpoint
    model = AutoModel.from_pretrained(folder).eval()
    image = ort.InferenceSession(str(exported[family] / "image-encoder" / "model.onnx"))
    text = ort.InferenceSession(str(exported[family] / "text-encoder" / "model.onnx"))
    pixels = AutoImageProcessor.from_pretrained(folder, backend="pil")(
        images=_images(batch, batch), return_tensors="pt"
    )
    tokens = _hf_text(folder, family, PROMPTS[:batch])
    with torch.no_grad():
        want_img = model.get_image_features(**pixels).pooler_output.numpy()
        want_txt = model.get_text_features(**tokens).pooler_output.numpy()
    feed = {"input_ids": tokens["input_ids"].numpy()}
    if family == "clip":
        feed["attention_mask"] = tokens["attention_mask"].numpy()
    got_img = image.run(None, {"pixel_values": pixels["pixel_values"].numpy()})[0]
    got_txt = text.run(None, feed)[0]
    np.testing.assert_allclose(got_img, want_img, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_txt, want_txt, atol=1e-4, rtol=0)


def test_static_export_has_fixed_shapes(tiny_clip, tmp_path):
    opts = ExportOptions(static=True, batch_size=2, sequence_length=16)
    result = export_model(tiny_clip, tmp_path / "static", opts, show_progress=False)
    session = ort.InferenceSession(str(tmp_path / "static" / "text-encoder" / "model.onnx"))
    assert session.get_inputs()[0].shape == [2, 16]
    image = ort.InferenceSession(str(tmp_path / "static" / "image-encoder" / "model.onnx"))
    assert image.get_inputs()[0].shape == [2, 3, 32, 32]
    assert result.manifest.static and result.manifest.text.context_length == 16


def test_static_export_at_other_image_size(tiny_siglip, tmp_path):
    result = export_model(tiny_siglip, tmp_path / "s48", ExportOptions(static=True, image_size=48), show_progress=False)
    session = ort.InferenceSession(str(tmp_path / "s48" / "image-encoder" / "model.onnx"))
    assert session.get_inputs()[0].shape == [1, 3, 48, 48]
    assert result.manifest.image.output_size == (48, 48)


@pytest.mark.slow
def test_base_shaped_clip_exports_and_validates(tmp_path):
    ckpt = save_tiny_checkpoint("clip", tmp_path / "b32", shape="base")
    result = export_model(ckpt, tmp_path / "out", show_progress=False)
    assert result.manifest.embed_dim == 512
    assert result.manifest.validation["image-encoder"]["max_abs_diff"] < 1e-4
    assert result.manifest.validation["text-encoder"]["max_abs_diff"] < 1e-4


def test_large_models_use_one_external_data_file(tiny_clip, tmp_path, monkeypatch):
    import clipforge.export.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)  # treat the tiny model as "over 2 GB"
    result = export_model(tiny_clip, tmp_path / "ext", show_progress=False)
    for role in ("image-encoder", "text-encoder"):
        assert sorted(p.name for p in (tmp_path / "ext" / role).iterdir()) == ["model.onnx", "model.onnx.data"]
    assert "image-encoder/model.onnx.data" in result.manifest.files
    assert result.manifest.validation["text-encoder"]["max_abs_diff"] < 1e-4


def test_initializer_sizes_are_read_without_serialising():
    """One initializer over protobuf's 2 GiB (XLM-V's 901,629-token embedding at width 1024, open_clip's
    MetaCLIP 2 worldwide towers) cannot be measured with ByteSize(); the export decides on external data from
    shape and type instead, and agrees with the bytes of a small tensor."""
    import onnx

    from clipforge.export.onnx_export import EXTERNAL_DATA_BYTES, tensor_bytes

    huge = onnx.TensorProto(name="embed", data_type=onnx.TensorProto.FLOAT, dims=[901_629, 1024])
    assert tensor_bytes(huge) == 901_629 * 1024 * 4 > EXTERNAL_DATA_BYTES
    small = onnx.numpy_helper.from_array(np.arange(12, dtype=np.float16).reshape(3, 4), "w")
    assert tensor_bytes(small) == len(small.raw_data) == 24
