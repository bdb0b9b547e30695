"""Evaluation data sources (image folders, parquet/arrow, save_to_disk, manifests, hub path) and the messages
bad input gets. Pure: no model is run."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipforge.data import sources
from clipforge.data.labelled import load_eval_data
from clipforge.errors import InputError
from clipforge.evaluation.retrieval_data import load_retrieval_data


def png(color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def write_parquet(path, labels, names=None, images=None, hf_names=None):
    images = images if images is not None else [{"bytes": png(), "path": None}] * len(labels)
    table = pa.table({"image": images, "label": labels})
    meta = {}
    if names:
        meta[b"class_names"] = json.dumps(names)
    if hf_names:
        features = {"label": {"names": hf_names, "_type": "ClassLabel"}, "image": {"_type": "Image"}}
        meta[b"huggingface"] = json.dumps({"info": {"features": features}})
    pq.write_table(table.replace_schema_metadata(meta or None), path)
    return path


def image_folder(root, classes=("cat", "dog"), per_class=2):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), "blue").save(root / c / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_with_and_without_split(tmp_path):
    data = load_eval_data(str(image_folder(tmp_path / "flat")), split="test")
    assert data.class_names == ["cat", "dog"] and data.labels == [0, 0, 1, 1] and len(data.images) == 4
    image_folder(tmp_path / "nested" / "train")
    image_folder(tmp_path / "nested" / "test", classes=("cat", "dog", "emu"), per_class=1)
    data = load_eval_data(str(tmp_path / "nested"), split="test")
    assert data.class_names == ["cat", "dog", "emu"] and data.split_size == 3
    with pytest.raises(InputError, match="split 'validation' not found in .*nested; it has: test, train"):
        load_eval_data(str(tmp_path / "nested"), split="validation")


def test_class_names_file_order_and_samples(tmp_path):
    root = image_folder(tmp_path / "d", per_class=5)
    data = load_eval_data(str(root), class_names=["dog", "cat", "owl"], samples=4)
    assert data.class_names == ["dog", "cat", "owl"] and len(data.images) == 4 and data.split_size == 10
    assert data.images == sorted(data.images)  # drawn at random, kept in dataset order
    again = load_eval_data(str(root), class_names=["dog", "cat", "owl"], samples=4)
    assert again.images == data.images  # fixed seed
    assert load_eval_data(str(root), samples=4, seed=1).images != data.images


def test_parquet_class_names_from_hf_features_and_metadata(tmp_path):
    data = load_eval_data(str(write_parquet(tmp_path / "a.parquet", [1, 0], hf_names=["ant", "bee"])))
    assert data.class_names == ["ant", "bee"] and data.labels == [1, 0] and isinstance(data.images[0], bytes)
    data = load_eval_data(str(write_parquet(tmp_path / "b.parquet", [0, 1], names=["x", "y"])))
    assert data.class_names == ["x", "y"]
    data = load_eval_data(str(write_parquet(tmp_path / "c.parquet", ["owl", "emu", "owl"])))
    assert data.class_names == ["emu", "owl"] and data.labels == [1, 0, 1]  # string labels, sorted classes


def test_split_folders_shards_and_paths(tmp_path):
    (tmp_path / "data").mkdir()
    write_parquet(tmp_path / "data" / "test-00000-of-00002.parquet", [0], hf_names=["a", "b"])
    write_parquet(tmp_path / "data" / "test-00001-of-00002.parquet", [1], hf_names=["a", "b"])
    data = load_eval_data(str(tmp_path), split="test")
    assert data.labels == [0, 1] and data.class_names == ["a", "b"]
    with pytest.raises(InputError, match="split 'train' not found .*: test"):
        load_eval_data(str(tmp_path), split="train")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    rel = write_parquet(tmp_path / "rel.parquet", [0], names=["a"], images=["x.png"])
    assert load_eval_data(str(rel)).images == [tmp_path / "x.png"]  # relative to the table file


def test_arrow_stream_file_and_save_to_disk(tmp_path):
    table = pa.table({"img": [png()] * 2, "fine_label": [0, 1]}).replace_schema_metadata(
        {"class_names": json.dumps(["a", "b"])}
    )
    for name, writer in (("s.arrow", pa.ipc.new_stream), ("f.arrow", pa.ipc.new_file)):
        with writer(str(tmp_path / name), table.schema) as w:
            w.write_table(table)
        data = load_eval_data(str(tmp_path / name))
        assert data.labels == [0, 1] and data.class_names == ["a", "b"]
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": png(), "path": None}] * 3, "label": [1, 0, 1]}, features=features
    )
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    data = load_eval_data(str(tmp_path / "saved"), split="test")
    assert data.class_names == ["cat", "dog"] and data.labels == [1, 0, 1]
    with pytest.raises(InputError, match="split 'train' not found .*it has: test"):
        load_eval_data(str(tmp_path / "saved"), split="train")


def test_manifests(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,label\na.png,cat\nmissing.png,dog\n")
    data = load_eval_data(str(tmp_path / "m.csv"))
    assert data.class_names == ["cat", "dog"] and data.images == [tmp_path / "a.png", tmp_path / "missing.png"]
    (tmp_path / "m.jsonl").write_text('{"file": "a.png", "target": 1}\n\n{"file": "a.png", "target": 0}\n')
    data = load_eval_data(str(tmp_path / "m.jsonl"), class_names=["cat", "dog"])
    assert data.labels == [1, 0]
    (tmp_path / "i.csv").write_text("image,label\na.png,1\n")  # class indices as text, with names given
    assert load_eval_data(str(tmp_path / "i.csv"), class_names=["cat", "dog"]).labels == [1]


def test_hub_ids_go_through_datasets(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": png(), "path": None}, {"bytes": b"junk", "path": None}], "fine_label": [1, 0]},
        features=features,
    )
    calls = []
    monkeypatch.setattr(sources, "load_hub", lambda name, split: calls.append((name, split)) or ds)
    data = load_eval_data("uoft-cs/cifar100", "test", columns={"input_column": "img", "label_column": "fine_label"})
    assert calls == [("uoft-cs/cifar100", "test")] and data.class_names == ["a", "b"]
    assert data.images == [png(), b"junk"]  # not decoded: a bad image is counted later, not fatal here


def test_hub_errors_are_one_line():
    pytest.importorskip("datasets")
    with pytest.raises(InputError, match="cannot load dataset 'nobody/nothing-here' split 'test'"):
        load_eval_data("nobody/nothing-here")


def test_bad_dataset_input(tmp_path):
    path = write_parquet(tmp_path / "d.parquet", [0, 1, 1], ["a", "b"])
    with pytest.raises(
        InputError,
        match=r"column 'img' \(columns=\{'input_column': 'img'\}\) not found; the dataset has: "
        "image, label",
    ):
        load_eval_data(str(path), columns={"input_column": "img"})
    with pytest.raises(InputError, match=r"larger than .*d.parquet \(3 rows\); use at most 3"):
        load_eval_data(str(path), samples=10)
    with pytest.raises(InputError, match="at least 1"):
        load_eval_data(str(path), samples=0)
    with pytest.raises(InputError, match=r"label 5 is out of range for 2 classes \(valid: 0..1\)"):
        load_eval_data(str(write_parquet(tmp_path / "e.parquet", [0, 5], ["a", "b"])))
    with pytest.raises(InputError, match="-1 usually marks an unlabelled split"):
        load_eval_data(str(write_parquet(tmp_path / "u.parquet", [-1, 0], ["a", "b"])))
    with pytest.raises(InputError, match=r"is empty \(0 rows\)"):
        load_eval_data(str(write_parquet(tmp_path / "f.parquet", [], ["a"], images=[])))
    (tmp_path / "m.csv").write_text("path,label\nx.png,cat\ny.png,zebra\n")
    with pytest.raises(InputError, match=r"unknown label\(s\) \['zebra'\]; known classes: cat, dog"):
        load_eval_data(str(tmp_path / "m.csv"), class_names=["cat", "dog"])
    with pytest.raises(InputError, match="labels are class indices but the data names no classes; pass class_names="):
        load_eval_data(str(write_parquet(tmp_path / "g.parquet", [0, 1])))
    (tmp_path / "h.csv").write_text("path,label\nx.png,\n")
    with pytest.raises(InputError, match="1 row\\(s\\) have no label"):
        load_eval_data(str(tmp_path / "h.csv"))
    with pytest.raises(InputError, match="does not exist"):
        load_eval_data(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        load_eval_data(str(tmp_path / "empty"))


def test_missing_label_column_names_the_columns(tmp_path):
    pq.write_table(pa.table({"image": [b""], "y": [0]}), tmp_path / "n.parquet")
    with pytest.raises(
        InputError, match="no label column found .*the dataset has: image, y; pass columns=\\{'label_column': 'NAME'\\}"
    ):
        load_eval_data(str(tmp_path / "n.parquet"))


def test_retrieval_data_multi_caption(tmp_path):
    rows = [
        {"image": {"bytes": png(), "path": None}, "captions": ["a red square", "red"]},
        {"image": {"bytes": png("blue"), "path": None}, "captions": ["a blue square"]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    data = load_retrieval_data(str(tmp_path / "p.parquet"))
    assert data.captions == ["a red square", "red", "a blue square"] and data.caption_image == [0, 0, 1]
    (tmp_path / "p.jsonl").write_text('{"image": "a.png", "text": ""}\n')
    with pytest.raises(InputError, match="row 0 has no caption"):
        load_retrieval_data(str(tmp_path / "p.jsonl"))
    with pytest.raises(InputError, match="no caption column found"):
        load_retrieval_data(str(write_parquet(tmp_path / "l.parquet", [0])))
