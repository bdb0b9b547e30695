"""The shapes set and the trained tiny fixtures, checked with transformers / datasets directly (not clipforge)."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from clipforge.testing import corpus
from clipforge.testing.shapes import COLOURS, SHAPES, make_shapes_dataset

TEXT_KWARGS = {"clip": {"padding": True}, "siglip": {"padding": "max_length", "max_length": 64}}


def _test_files(dataset):
    folders = [dataset.folder("test") / c for c in dataset.class_names]
    return [(p, label) for label, f in enumerate(folders) for p in sorted(f.iterdir())]


def _top1(folder, family, dataset) -> float:
    """Zero-shot top-1 with "a photo of a {}.", through AutoProcessor + AutoModel only."""
    model, processor = AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    files = _test_files(dataset)
    prompts = [f"a photo of a {c}." for c in dataset.class_names]
    with torch.no_grad():
        pixels = processor(images=[Image.open(p) for p, _ in files], return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pixels).pooler_output
        txt = model.get_text_features(**processor(text=prompts, return_tensors="pt", **TEXT_KWARGS[family]))
        txt = txt.pooler_output
    return float(((img @ txt.T).argmax(1).numpy() == np.array([label for _, label in files])).mean())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_trained_zero_shot_top1_at_least_80_percent(family, shapes_dataset, request):
    folder = request.getfixturevalue(f"trained_{family}")
    assert len(shapes_dataset.class_names) >= 20  # chance <= 5%
    assert _top1(folder, family, shapes_dataset) >= 0.80


@pytest.mark.slow
@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_trained_folder_is_a_normal_hf_checkpoint(family, request):
    folder = request.getfixturevalue(f"trained_{family}")
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json"} <= names
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == {"clip": "CLIPModel", "siglip": "SiglipModel"}[family]
    assert (
        type(AutoProcessor.from_pretrained(folder)).__name__
        == {"clip": "CLIPProcessor", "siglip": "SiglipProcessor"}[family]
    )


def test_generator_is_deterministic(tmp_path):
    a = make_shapes_dataset(tmp_path / "a", splits={"test": 4})
    b = make_shapes_dataset(tmp_path / "b", splits={"test": 4})
    c = make_shapes_dataset(tmp_path / "c", splits={"test": 4}, seed=1)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".png", ".jpg", ".parquet", ".txt"}
    assert all((a.root / p).read_bytes() == (b.root / p).read_bytes() for p in files)
    assert (a.root / "test/red circle/0.png").read_bytes() != (c.root / "test/red circle/0.png").read_bytes()


def test_class_names_are_words_the_tokenizers_know():
    assert set(COLOURS) <= set(corpus.COLOURS) and set(SHAPES) <= set(corpus.SHAPES)


def test_layout_parquet_and_class_names(shapes_dataset):
    names = shapes_dataset.class_names
    assert len(names) >= 20 and names[0] == "red circle"
    assert shapes_dataset.classes_file.read_text().splitlines() == names
    table = pq.read_table(shapes_dataset.parquet("test"))
    assert table.column_names == ["image", "label"] and table.num_rows == 10 * len(names)
    assert json.loads(table.schema.metadata[b"class_names"]) == names
    row = table.slice(15, 1).to_pylist()[0]
    assert Image.open(io.BytesIO(row["image"]["bytes"])).size == (64, 64)
    assert (shapes_dataset.root / row["image"]["path"]).read_bytes() == row["image"]["bytes"]
    assert row["image"]["path"].startswith(f"test/{names[row['label']]}/")


def test_parquet_loads_with_hf_datasets_as_image_and_classlabel(shapes_dataset):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_parquet(str(shapes_dataset.parquet("test")))
    assert ds.features["label"].names == shapes_dataset.class_names
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds[0]["image"].size == (64, 64) and ds[0]["label"] == 0
    folder = datasets.load_dataset("imagefolder", data_dir=str(shapes_dataset.folder("test")), split="train")
    assert sorted(folder.features["label"].names) == sorted(shapes_dataset.class_names)


def test_tiny_clip_tokenizer_is_the_same_in_every_process():
    """Fixture checkpoints are cached across runs, so the tokenizer they are built with must not depend on the
    process (hash seeds, set order)."""
    import subprocess
    import sys

    code = (
        "import hashlib, json; from clipforge.testing.tokenizers import clip_vocab_and_merges; "
        "print(hashlib.sha256(json.dumps(clip_vocab_and_merges()).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1
