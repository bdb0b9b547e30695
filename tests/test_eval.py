"""clipforge eval: exact agreement with an independent PyTorch computation, data sources, bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.evaluation.datasets import load_eval_data
from clipforge.export import export_model


@pytest.fixture(scope="module")
def trained_export(trained_clip, tmp_path_factory):
    return export_model(trained_clip, tmp_path_factory.mktemp("ev") / "clip", show_progress=False).path


def _torch_topk(folder, dataset, templates):
    """Independent zero-shot top-1/top-5 with transformers only (prompt ensemble = mean of normalised)."""
    model = AutoModel.from_pretrained(folder).eval()
    proc, tok = AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    files = [(p, i) for i, c in enumerate(dataset.class_names) for p in sorted((dataset.folder("test") / c).iterdir())]
    with torch.no_grad():
        img = model.get_image_features(**proc(images=[Image.open(p) for p, _ in files], return_tensors="pt"))
        img = torch.nn.functional.normalize(img.pooler_output, dim=-1)
        per_class = []
        for c in dataset.class_names:
            t = model.get_text_features(**tok([x.format(c) for x in templates], padding=True, return_tensors="pt"))
            per_class.append(torch.nn.functional.normalize(t.pooler_output, dim=-1).mean(0))
        txt = torch.nn.functional.normalize(torch.stack(per_class), dim=-1)
    top = (img @ txt.T).argsort(dim=1, descending=True)[:, :5].numpy()
    labels = np.array([label for _, label in files])
    return 100 * float((top[:, 0] == labels).mean()), 100 * float((top == labels[:, None]).any(1).mean())


@pytest.mark.slow
@pytest.mark.parametrize("templates", ["default", "cifar10"])
def test_eval_matches_independent_pytorch(trained_export, trained_clip, shapes_dataset, tmp_path, templates, capsys):
    from clipforge.zeroshot.templates import get_templates

    out = tmp_path / "r.json"
    assert main(["eval", "-m", str(trained_export), "--dataset", str(shapes_dataset.root), "--split", "test",
                 "--templates", templates, "--json", str(out), "--report", str(tmp_path / "r.md")]) == 0
    report = json.loads(out.read_text())["onnx"]
    top1, top5 = _torch_topk(trained_clip, shapes_dataset, get_templates(templates))
    assert report["top1"] == pytest.approx(top1) and report["top5"] == pytest.approx(top5)
    assert report["evaluated"] == 200 and "| ONNX top-1 |" in (tmp_path / "r.md").read_text()


@pytest.mark.slow
def test_baseline_torch_and_max_drop(trained_export, trained_clip, shapes_dataset, tmp_path):
    out = tmp_path / "r.json"
    args = ["eval", "-m", f"image-encoder={trained_export}/image-encoder/model.onnx",
            "-m", f"text-encoder={trained_export}/text-encoder/model.onnx", "--dataset",
            str(shapes_dataset.parquet("test")), "--samples", "60", "--baseline", "torch", "--model-id",
            str(trained_clip), "--json", str(out), "--max-drop", "0.5"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["onnx"]["predictions"] == report["baseline"]["predictions"]


def _parquet(path, labels, names=None, images=None):
    good = Image.new("RGB", (20, 20), "red")
    import io

    buf = io.BytesIO()
    good.save(buf, "PNG")
    images = images or [{"bytes": buf.getvalue(), "path": None}] * len(labels)
    table = pa.table({"image": images, "label": labels})
    if names:
        table = table.replace_schema_metadata({"class_names": json.dumps(names)})
    pq.write_table(table, path)
    return path


def test_bad_dataset_input(tmp_path):
    path = _parquet(tmp_path / "d.parquet", [0, 1, 1], ["a", "b"])
    with pytest.raises(InputError, match="column 'img' not found; the dataset has: image, label"):
        load_eval_data(str(path), columns={"input_column": "img"})
    with pytest.raises(InputError, match="larger than the split \\(3 rows\\)"):
        load_eval_data(str(path), samples=10)
    with pytest.raises(InputError, match="out of range"):
        load_eval_data(str(_parquet(tmp_path / "e.parquet", [0, 5], ["a", "b"])))
    with pytest.raises(InputError, match="empty"):
        load_eval_data(str(_parquet(tmp_path / "f.parquet", [], ["a"], images=[])))
    (tmp_path / "m.csv").write_text("path,label\nx.png,cat\ny.png,zebra\n")
    with pytest.raises(InputError, match="unknown label\\(s\\) \\['zebra'\\]"):
        load_eval_data(str(tmp_path / "m.csv"), class_names=["cat", "dog"])
    with pytest.raises(InputError, match="does not exist"):
        load_eval_data(str(tmp_path / "nope"))


def test_unreadable_images_are_counted(tiny_clip, tmp_path, capsys):
    folder = export_model(tiny_clip, tmp_path / "o", show_progress=False).path
    root = tmp_path / "data"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (30, 30), "blue").save(root / cls / "ok.png")
    (root / "dog" / "broken.png").write_bytes(b"nope")
    (tmp_path / "templates.txt").write_text("a photo of a {}.\nart of the {}.\n")
    out = tmp_path / "r.json"
    assert main(["eval", "-m", str(folder), "--dataset", str(root), "--templates", str(tmp_path / "templates.txt"),
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())["onnx"]
    assert report["unreadable"] == 1 and report["evaluated"] == 2 and "broken.png" in report["failures"][0]["image"]


def test_unknown_role_lists_valid_roles(capsys, tmp_path):
    assert main(["eval", "-m", "vision=x.onnx", "--dataset", str(tmp_path)]) == 2
    assert "image-encoder, text-encoder" in capsys.readouterr().err


def test_retrieval_recall(tiny_clip, tmp_path):
    folder = export_model(tiny_clip, tmp_path / "o", show_progress=False).path
    rng = np.random.default_rng(0)
    import io

    rows = []
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(buf, "PNG")
        rows.append({"image": {"bytes": buf.getvalue(), "path": None}, "caption": f"picture number {i}"})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    out = tmp_path / "r.json"
    assert main(["eval", "-m", str(folder), "--task", "zero-shot-retrieval", "--dataset",
                 str(tmp_path / "pairs.parquet"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())["onnx"]
    assert report["pairs"] == 6 and report["image_to_text"]["R@10"] == 100.0
    assert 0 <= report["text_to_image"]["R@1"] <= 100
