"""The trained tiny fixtures score well above chance, measured with transformers directly (not clipforge)."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from clipforge.testing.shapes import make_shapes_dataset


def _top1(folder, family, dataset):
    model = AutoModel.from_pretrained(folder).eval()
    processor, tokenizer = AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    files = [(p, i) for i, c in enumerate(dataset.class_names) for p in sorted((dataset.folder("test") / c).iterdir())]
    prompts = [f"a photo of a {c}." for c in dataset.class_names]
    kwargs = {"padding": "max_length", "max_length": 64} if family == "siglip" else {"padding": True}
    tokens = tokenizer(prompts, return_tensors="pt", **kwargs)
    with torch.no_grad():
        img = model.get_image_features(**processor(images=[Image.open(p) for p, _ in files],
                                                   return_tensors="pt")).pooler_output
        txt = model.get_text_features(**tokens).pooler_output
    return float(((img @ txt.T).argmax(1).numpy() == np.array([label for _, label in files])).mean())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_trained_zero_shot_top1_at_least_80_percent(family, shapes_dataset, request):
    folder = request.getfixturevalue(f"trained_{family}")
    assert len(shapes_dataset.class_names) >= 20
    assert _top1(folder, family, shapes_dataset) >= 0.80  # chance is 5%


def test_generator_is_deterministic_and_parquet_round_trips(tmp_path, shapes_dataset):
    small = {"test": 2}
    a = make_shapes_dataset(tmp_path / "a", splits=small)
    b = make_shapes_dataset(tmp_path / "b", splits=small)
    for p in sorted((a.root / "test").rglob("*.png")):
        assert p.read_bytes() == (b.root / p.relative_to(a.root)).read_bytes()
    table = pq.read_table(shapes_dataset.parquet("test"))
    assert json.loads(table.schema.metadata[b"class_names"]) == shapes_dataset.class_names
    assert table.num_rows == 10 * len(shapes_dataset.class_names)
    row = table.slice(0, 1).to_pylist()[0]
    assert Image.open(io.BytesIO(row["image"]["bytes"])).size == (64, 64)
    assert (shapes_dataset.root / row["image"]["path"]).is_file()
