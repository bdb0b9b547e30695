"""The composite runtime: HF pipeline drop-in parity, fast path, caches, static builds and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipforge.errors import InputError
from clipforge.export import ExportOptions, export_model
from clipforge.models import ZeroShotModel

LABELS = ["red circle", "blue square", "green triangle", "a dog", "a very long label about a yellow star"]


@pytest.fixture(scope="module")
def exported(exported_tiny, hf_checkpoints):
    return {f: exported_tiny[f] for f in hf_checkpoints}


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (30 + 11 * i, 45, 3), dtype=np.uint8)) for i in range(n)]


def test_hf_pipeline_drop_in_matches_pytorch(exported, tiny_checkpoint):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, pipeline

    family, folder = tiny_checkpoint
    kwargs = {
        "tokenizer": AutoTokenizer.from_pretrained(folder),
        "image_processor": AutoImageProcessor.from_pretrained(folder),
    }
    torch_pipe = pipeline("zero-shot-image-classification", model=AutoModel.from_pretrained(folder), **kwargs)
    onnx_pipe = pipeline("zero-shot-image-classification", model=ZeroShotModel.from_onnx(exported[family]), **kwargs)
    for image in _images(3):
        want, got = torch_pipe(image, candidate_labels=LABELS), onnx_pipe(image, candidate_labels=LABELS)
        assert [r["label"] for r in got] == [r["label"] for r in want]
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-4)


def test_from_onnx_dict_with_seed_style_arguments(exported):
    folder = exported["clip"]
    model = ZeroShotModel.from_onnx(
        {
            "image-encoder": folder / "image-encoder" / "model.onnx",
            "text-encoder": folder / "text-encoder" / "model.onnx",
        },
        hf_config=None,
    )
    assert model.manifest.family == "clip"


def test_classify_matches_call_and_uses_label_cache(exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    model = ZeroShotModel.from_onnx(exported[family])
    images = _images(4)
    first = model.classify(images, LABELS, top_k=3)
    misses = model._labels.misses
    again = model.classify(images, LABELS, top_k=3)
    assert model._labels.misses == misses == len(LABELS)
    assert first == again and all(len(r) == 3 for r in first)
    text = model.label_embeddings(LABELS)
    probs = model.scores(model.logits(model.embed_images(images), text))
    assert [r[0]["label"] for r in first] == [LABELS[i] for i in probs.argmax(axis=1)]


def test_clip_padding_to_longest_does_not_change_embeddings(exported):
    model = ZeroShotModel.from_onnx(exported["clip"])
    alone = model.embed_texts(["cat"])
    batched = model.embed_texts(["cat", "a much longer prompt with many more words in it than the first"])
    enc = model.tokenizer.encode(["cat"])
    full_ids = np.full((1, 77), model.manifest.text.pad_id, dtype=np.int64)
    full_ids[0, : enc.input_ids.shape[1]] = enc.input_ids[0]
    full_mask = np.zeros_like(full_ids)
    full_mask[0, : enc.input_ids.shape[1]] = 1
    padded77 = model.encode_tokens(full_ids, full_mask)
    padded77 /= np.linalg.norm(padded77, axis=1, keepdims=True)
    np.testing.assert_allclose(batched[:1], alone, atol=1e-5)
    np.testing.assert_allclose(padded77, alone, atol=1e-5)


def test_images_from_paths_and_bytes(exported, tmp_path):
    model = ZeroShotModel.from_onnx(exported["clip"])
    image = _images(1)[0]
    image.save(tmp_path / "a.png")
    by_pil = model.embed_images([image])
    by_path = model.embed_images([tmp_path / "a.png", str(tmp_path / "a.png")])
    by_bytes = model.embed_images([(tmp_path / "a.png").read_bytes()])
    np.testing.assert_allclose(by_path, np.repeat(by_pil, 2, axis=0), atol=1e-6)
    np.testing.assert_allclose(by_bytes, by_pil, atol=1e-6)
    assert by_pil.shape == (1, model.manifest.embed_dim)


def test_static_build_is_padded_and_chunked(tiny_checkpoint, exported, tmp_path):
    family, folder = tiny_checkpoint
    static = export_model(folder, tmp_path / "s", ExportOptions(static=True, batch_size=2), show_progress=False)
    fixed, dynamic = ZeroShotModel.from_onnx(static.path), ZeroShotModel.from_onnx(exported[family])
    images = _images(5)
    np.testing.assert_allclose(fixed.embed_images(images), dynamic.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(fixed.embed_texts(LABELS), dynamic.embed_texts(LABELS), atol=1e-5)


def test_over_long_text_is_truncated_with_a_warning(exported):
    model = ZeroShotModel.from_onnx(exported["clip"])
    with pytest.warns(UserWarning, match="truncated"):
        out = model.embed_texts(["word " * 200])
    assert out.shape == (1, model.manifest.embed_dim)


@pytest.mark.parametrize(
    "labels, template, message",
    [
        ([], "a {}", "empty"),
        (["cat", "cat"], "a {}", "duplicate"),
        (["cat", " "], "a {}", "empty"),
        (["cat"], "a photo", "placeholder"),
    ],
)
def test_bad_labels_and_templates(exported, labels, template, message):
    model = ZeroShotModel.from_onnx(exported["clip"])
    with pytest.raises(InputError, match=message):
        model.classify(_images(1), labels, template=template)


def test_wrong_roles_and_mismatched_encoders(exported):
    clip, siglip = exported["clip"], exported["siglip"]
    with pytest.raises(InputError, match="valid roles"):
        ZeroShotModel.from_onnx(
            {"vision": clip / "image-encoder" / "model.onnx", "text-encoder": clip / "text-encoder" / "model.onnx"}
        )
    with pytest.raises(InputError, match="different models"):
        ZeroShotModel.from_onnx(
            {
                "image-encoder": clip / "image-encoder" / "model.onnx",
                "text-encoder": siglip / "text-encoder" / "model.onnx",
            }
        )


def test_missing_provider_names_the_package(exported):
    with pytest.raises(InputError, match="onnxruntime-gpu"):
        ZeroShotModel.from_onnx(exported["clip"], device="cuda")


def test_similarity_known_answer_on_embeddings(exported):
    model = ZeroShotModel.from_onnx(exported["clip"])
    got = model.similarity(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([[0.0, 2.0], [1.0, 1.0]]))
    np.testing.assert_allclose(got, [[0.8, 0.7 * 2**0.5], [0.0, 2**-0.5]], atol=1e-12)


def _torch_reference(folder, family, images, texts):
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    padding = {"padding": "max_length"} if family == "siglip" else {"padding": True}
    tok = AutoTokenizer.from_pretrained(folder)(texts, return_tensors="np", **padding)
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")  # the processor the runtime reproduces
    pixels = processor(images=images, return_tensors="np")["pixel_values"]
    feed = {"input_ids": tok["input_ids"], "pixel_values": pixels}
    if family == "clip":
        feed["attention_mask"] = tok["attention_mask"]
    with torch.no_grad():
        out = AutoModel.from_pretrained(folder)(**{k: torch.from_numpy(v) for k, v in feed.items()})
    return feed, out


def test_call_with_numpy_and_return_dict_false_matches_pytorch(exported, tiny_checkpoint):
    family, folder = tiny_checkpoint
    model = ZeroShotModel.from_onnx(exported[family])
    texts = ["a red circle", "a blue square on the grass", "dog"]
    feed, want = _torch_reference(folder, family, _images(2), texts)
    out = model(**feed, return_dict=False)
    assert isinstance(out, tuple) and all(isinstance(x, np.ndarray) for x in out)
    logits_per_image, logits_per_text, text_embeds, image_embeds = out
    np.testing.assert_allclose(logits_per_image, want.logits_per_image.numpy(), atol=1e-4)
    np.testing.assert_array_equal(logits_per_text, logits_per_image.T)
    np.testing.assert_allclose(image_embeds, want.image_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(text_embeds, want.text_embeds.numpy(), atol=1e-5)
    cosine = want.image_embeds.numpy() @ want.text_embeds.numpy().T  # PyTorch's embeddings are normalised
    np.testing.assert_allclose(model.similarity(_images(2), texts), cosine, atol=1e-5)
