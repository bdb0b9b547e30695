"""Re-parameterisation before export: a tiny MobileCLIP-style checkpoint (timm FastViT blocks, BatchNorm statistics
and layer scales made random so a wrong fold shows) exports folded, matches the unfolded open_clip model, records
the fold in the manifest, and its image graph is smaller than the unfolded export of the same model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from clipforge.export.exporter import export_model
from clipforge.export.onnx_export import export_encoder
from clipforge.families.openclip import folding_record
from clipforge.families.openclip_io import wrap_model
from clipforge.registry import get_family
from clipforge.testing.tiny_fastvit import randomize_train_state
from clipforge.testing.tiny_openclip import model_config, random_model, save_hub_layout

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _mobileclip(seed: int = 3):
    model = random_model(model_config("mobileclip"), seed=seed)
    randomize_train_state(model, seed)
    return model.eval()


def _branches(model) -> int:
    """How many MobileOne blocks still carry their train-time branches (no ``reparam_conv`` yet)."""
    return sum(1 for m in model.modules() if type(m).__name__ == "MobileOneBlock" and m.reparam_conv is None)


@pytest.fixture(scope="module")
def mobileclip(tmp_path_factory):
    root = tmp_path_factory.mktemp("mobileclip")
    model = _mobileclip()
    folder = save_hub_layout(model, model_config("mobileclip"), root / "ckpt")
    return model, export_model(folder, root / "export", show_progress=False)


@pytest.mark.slow
def test_folded_export_matches_the_unfolded_model(mobileclip):
    """The exported image graph, run by onnxruntime, against open_clip's encode_image of the train-time model
    (recomputed here), and the text graph against encode_text."""
    model, result = mobileclip
    assert _branches(model) > 0  # the reference really is the unfolded model
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    ids = np.zeros((2, 77), dtype=np.int64)
    ids[:, :4] = [[49406, 320, 1929, 49407], [49406, 1449, 269, 49407]]
    image = ort.InferenceSession(str(result.path / "image-encoder" / "model.onnx"))
    text = ort.InferenceSession(str(result.path / "text-encoder" / "model.onnx"))
    with torch.no_grad():
        want_img = model.encode_image(torch.from_numpy(pixels)).numpy()
        want_txt = model.encode_text(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(image.run(None, {"pixel_values": pixels})[0], want_img, atol=1e-4, rtol=0)
    np.testing.assert_allclose(text.run(None, {"input_ids": ids})[0], want_txt, atol=1e-4, rtol=0)
    assert result.manifest.validation["image-encoder"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_manifest_records_what_was_folded(mobileclip):
    model, result = mobileclip
    towers = result.manifest.towers
    image = towers["image-encoder"]
    assert image["reparameterized"] is True
    assert image["folded"] == folding_record(wrap_model(model))["image-encoder"]["folded"]
    assert {"MobileOneBlock", "RepMixer", "ReparamLargeKernelConv", "RepConditionalPosEnc"} <= set(image["folded"])
    assert "reparameterized" not in towers["text-encoder"]  # a plain transformer: nothing to fold
    assert image["arch"] == "TimmModel"


@pytest.mark.slow
def test_folded_image_graph_is_smaller(mobileclip, tmp_path):
    """The same model exported without folding (the train-time graph) has more nodes."""
    model, result = mobileclip
    family = get_family("openclip")
    module = family.image_module(wrap_model(model))
    example = {"pixel_values": torch.randn(1, 3, 64, 64)}
    unfolded = export_encoder(module, example, family.io("image-encoder"), tmp_path / "m.onnx", opset=17, static=False)
    folded = _ops(result.path / "image-encoder" / "model.onnx")
    train_time = _ops(unfolded)
    assert sum(folded.values()) < sum(train_time.values())
    assert folded["Conv"] < train_time["Conv"] and folded["Add"] < train_time["Add"]  # branches merged
    assert folded["BatchNormalization"] < train_time["BatchNormalization"]  # identity-branch BNs folded


def _ops(path) -> Counter:
    """Operator counts of a graph, without the Identity/Constant nodes the exporter scatters."""
    ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    return ops - Counter({"Identity": ops["Identity"], "Constant": ops["Constant"]})


def test_inference_form_folds_a_copy_only():
    family = get_family("openclip")
    wrapped = wrap_model(_mobileclip())
    before = _branches(wrapped)
    folded, record = family.inference_form(wrapped)
    assert folded is not wrapped and before > 0
    assert _branches(wrapped) == before and _branches(folded) == 0
    assert record["image-encoder"]["reparameterized"] is True


def test_a_model_without_hooks_is_exported_as_it_is():
    wrapped = wrap_model(random_model(model_config("vit"), seed=1))
    folded, record = get_family("openclip").inference_form(wrapped)
    assert folded is wrapped and record == {}
