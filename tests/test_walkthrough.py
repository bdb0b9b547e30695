"""The CLIP walkthrough (config -> build per sub-model -> WinML-style Python API), run as written with a local
tiny checkpoint (native 224 px with 32 px patches like ViT-B/32, so the HF processor's pixels fit the static 224
graph) instead of the hub id."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipforge.cli.main import main
from clipforge.testing.checkpoints import save_tiny_checkpoint

LABELS = ["a photo of a cat", "a photo of a dog", "a photo of a car"]


@pytest.fixture(scope="module")
def walkthrough_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("walkthrough")
    ckpt = save_tiny_checkpoint("clip", root / "clip-ckpt", image_size=224, patch_size=32)  # 7x7 grid
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (180, 240, 3), dtype=np.uint8)).save(root / "cat.jpg")
    return root, str(ckpt)


def _reference_probs(ckpt, root):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(ckpt)
    inputs = processor(text=LABELS, images=Image.open(root / "cat.jpg"), return_tensors="pt", padding=True)
    with torch.no_grad():
        return CLIPModel.from_pretrained(ckpt)(**inputs).logits_per_image.softmax(dim=-1)[0].numpy()


def _run_inference(model, ckpt, root):
    """Step 4's inference code, as in the walkthrough (the hub id replaced by ``ckpt``, cat.jpg in ``root``)."""
    from PIL import Image
    from transformers import CLIPProcessor

    processor = CLIPProcessor.from_pretrained(ckpt)
    image = Image.open(root / "cat.jpg")
    labels = ["a photo of a cat", "a photo of a dog", "a photo of a car"]
    inputs = processor(text=labels, images=image, return_tensors="pt", padding=True)

    # Run both encoders and combine into per-label similarity scores
    outputs = model(**inputs)
    probs = outputs.logits_per_image.softmax(dim=-1)
    for label, p in zip(labels, probs[0].tolist()):
        print(f"{label}: {p:.4f}")
    return probs[0].numpy()


@pytest.mark.slow
def test_config_build_and_python_api_walkthrough(walkthrough_dir, monkeypatch):
    root, ckpt = walkthrough_dir
    monkeypatch.chdir(root)
    want = _reference_probs(ckpt, root)

    # Step 1 and 2: one config per sub-model, one build each (single-encoder builds from 'config' output)
    assert main(["config", "-m", ckpt, "--task", "zero-shot-image-classification", "-o", "clip.json"]) == 0
    assert main(["build", "-c", "clip_image-encoder.json", "-m", ckpt, "-o", "output/image-encoder", "-q"]) == 0
    assert main(["build", "-c", "clip_text-encoder.json", "-m", ckpt, "-o", "output/text-encoder", "-q"]) == 0
    assert (root / "output/image-encoder/model.onnx").is_file() and (root / "output/text-encoder/model.onnx").is_file()

    # Step 4, option 1
    from transformers import AutoConfig

    from clipforge import ModelForZeroShotImageClassification as WinMLAutoModel

    model = WinMLAutoModel.from_onnx(
        {
            "image-encoder": "output/image-encoder/model.onnx",
            "text-encoder": "output/text-encoder/model.onnx",
        },
        task="zero-shot-image-classification",
        hf_config=AutoConfig.from_pretrained(ckpt),
        skip_build=True,
    )
    assert model.config.model_type == "clip"
    np.testing.assert_allclose(_run_inference(model, ckpt, root), want, atol=2e-4)

    # Step 4, option 2
    model = WinMLAutoModel.from_pretrained(
        ckpt,
        task="zero-shot-image-classification",
    )
    np.testing.assert_allclose(_run_inference(model, ckpt, root), want, atol=2e-4)

    # Customizing shape config per sub-model
    model = WinMLAutoModel.from_pretrained(
        ckpt,
        task="zero-shot-image-classification",
        sub_model_kwargs={
            "image-encoder": {"shape_config": {"height": 224, "width": 224}},
            "text-encoder": {"shape_config": {"sequence_length": 77}},
        },
    )
    pixels = model.image_encoder.session.get_inputs()[0].shape
    assert pixels == [1, 3, 224, 224] and model.text_encoder.static_length == 77 and model.manifest.static
    np.testing.assert_allclose(_run_inference(model, ckpt, root), want, atol=2e-4)

    # save_pretrained writes one folder that loads like an export
    saved = model.save_pretrained(root / "saved")
    np.testing.assert_allclose(_run_inference(WinMLAutoModel.from_onnx(saved), ckpt, root), want, atol=2e-4)
