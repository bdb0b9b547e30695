"""clipforge eval end to end: exact agreement with an independent transformers computation on the trained
fixture, the PyTorch baseline, reports, unreadable images, retrieval and CLI errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import typer
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from clipforge.cli.eval import _check_drop
from clipforge.cli.main import main
from clipforge.export import export_model
from clipforge.zeroshot.templates import get_templates


@pytest.fixture(scope="module")
def trained_exports(request, tmp_path_factory):
    """family -> (checkpoint, export), built on first use."""
    cache = {}

    def get(family: str):
        if family not in cache:
            ckpt = request.getfixturevalue(f"trained_{family}")
            cache[family] = ckpt, export_model(ckpt, tmp_path_factory.mktemp("ev") / family, show_progress=False).path
        return cache[family]

    return get


def independent_topk(folder, dataset, templates: list[str]) -> tuple[float, float]:
    """Zero-shot top-1/top-5 with transformers only: the HF processor and tokenizer, get_*_features, prompt
    ensemble = mean of normalised prompt embeddings, renormalised; SigLIP text padded to max_length as HF does."""
    model = AutoModel.from_pretrained(folder).eval()
    proc, tok = AutoImageProcessor.from_pretrained(folder, backend="pil"), AutoTokenizer.from_pretrained(folder)
    siglip = model.config.model_type == "siglip"
    length = model.config.text_config.max_position_embeddings
    padding = {"padding": "max_length", "max_length": length} if siglip else {"padding": True}
    files = [(p, i) for i, c in enumerate(dataset.class_names) for p in sorted((dataset.folder("test") / c).iterdir())]
    with torch.no_grad():
        img = model.get_image_features(**proc(images=[Image.open(p) for p, _ in files], return_tensors="pt"))
        img = torch.nn.functional.normalize(img.pooler_output, dim=-1)
        per_class = []
        for c in dataset.class_names:
            enc = tok([t.format(c) for t in templates], return_tensors="pt", **padding)
            if siglip:
                enc.pop("attention_mask", None)
            t = model.get_text_features(**enc).pooler_output
            per_class.append(torch.nn.functional.normalize(t, dim=-1).mean(0))
        txt = torch.nn.functional.normalize(torch.stack(per_class), dim=-1)
    top = (img @ txt.T).argsort(dim=1, descending=True)[:, :5].numpy()
    labels = np.array([label for _, label in files])
    return 100 * float((top[:, 0] == labels).mean()), 100 * float((top == labels[:, None]).any(1).mean())


@pytest.mark.slow
@pytest.mark.parametrize("family,templates", [("clip", "default"), ("clip", "cifar10"), ("siglip", "default")])
def test_eval_matches_independent_pytorch(trained_exports, shapes_dataset, tmp_path, family, templates):
    ckpt, folder = trained_exports(family)
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert (
        main(
            [
                "eval",
                "-m",
                str(folder),
                "--dataset",
                str(shapes_dataset.root),
                "--split",
                "test",
                "-q",
                "--templates",
                templates,
                "--json",
                str(out),
                "--report",
                str(md),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    top1, top5 = independent_topk(ckpt, shapes_dataset, get_templates(templates))
    assert (report["onnx"]["top1"], report["onnx"]["top5"]) == (top1, top5)
    assert report["onnx"]["evaluated"] == len(shapes_dataset.class_names) * 10 and report["onnx"]["unreadable"] == 0
    assert top1 > 50 and report["template_count"] == len(get_templates(templates))  # 20 classes: chance is 5%
    assert "| ONNX top-1 |" in md.read_text() and "### Per-class accuracy" in md.read_text()


@pytest.mark.slow
def test_baseline_torch_side_by_side(trained_exports, shapes_dataset, tmp_path, capsys):
    ckpt, folder = trained_exports("clip")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = [
        "eval",
        "-m",
        f"image-encoder={folder}/image-encoder/model.onnx",
        "-m",
        f"text-encoder={folder}/text-encoder/model.onnx",
        "--model-id",
        str(ckpt),
        "--dataset",
        str(shapes_dataset.parquet("test")),
        "--samples",
        "60",
        "--baseline",
        "torch",
        "--max-drop",
        "0.5",
        "--json",
        str(out),
        "--report",
        str(md),
        "-q",
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["onnx"]["predictions"] == report["baseline"]["predictions"] and report["agreement"] == 100.0
    assert report["delta"]["top1"] == 0.0 and report["onnx"]["evaluated"] == report["baseline"]["evaluated"] == 60
    assert "Δ (ONNX − PyTorch)" in capsys.readouterr().out
    row = md.read_text().splitlines()[4]
    assert row.startswith(f"| {ckpt} |") and "+0.0" in row


def test_max_drop_exit_code():
    _check_drop({"delta": {"top1": -0.4}}, 0.5)
    with pytest.raises(typer.Exit) as exc:
        _check_drop({"delta": {"top1": -1.5}}, 0.5)
    assert exc.value.exit_code == 3
    assert main(["eval", "-m", "x", "--dataset", "y", "--max-drop", "1"]) == 2


def shapes_folder(root, broken: bool = True):
    for cls, colour in (("red square", "red"), ("blue square", "blue")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (30 + i, 30), colour).save(root / cls / f"{i}.png")
    if broken:
        (root / "blue square" / "broken.png").write_bytes(b"nope")
    return root


def test_unreadable_images_counted_templates_file_and_reports(clip_folder, tmp_path, capsys):
    root = shapes_folder(tmp_path / "data")
    (tmp_path / "templates.txt").write_text("a photo of a {}.\nart of the {}.\n")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert (
        main(
            [
                "eval",
                "-m",
                str(clip_folder),
                "--dataset",
                str(root),
                "--templates",
                str(tmp_path / "templates.txt"),
                "--batch-size",
                "4",
                "--json",
                str(out),
                "--report",
                str(md),
                "-q",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    onnx = report["onnx"]
    assert onnx["unreadable"] == 1 and onnx["evaluated"] == 6 and onnx["samples"] == 7
    assert "broken.png" in onnx["failures"][0]["image"] and report["template_count"] == 2
    assert set(onnx["per_class"]) == {"red square", "blue square"} and len(onnx["predictions"]) == 6
    assert onnx["top5"] == 100.0 and onnx["top5_k"] == 2  # two classes: top-5 means top-2
    captured = capsys.readouterr()
    assert "1 unreadable image(s) skipped" in captured.err and "| 1 |" in md.read_text()


def test_all_images_unreadable_is_an_error(clip_folder, tmp_path, capsys):
    (tmp_path / "d" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "cat" / "x.png").write_bytes(b"junk")
    assert main(["eval", "-m", str(clip_folder), "--dataset", str(tmp_path / "d"), "-q"]) == 2
    assert "none of the 1 images could be read" in capsys.readouterr().err


@pytest.mark.slow
def test_siglip_eval_runs(tiny_siglip, tmp_path):
    folder = export_model(tiny_siglip, tmp_path / "s", show_progress=False).path
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                "-m",
                str(folder),
                "--dataset",
                str(shapes_folder(tmp_path / "d", broken=False)),
                "--templates",
                "imagenet-7",
                "--json",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["family"] == "siglip" and report["onnx"]["evaluated"] == 6


@pytest.mark.parametrize(
    "models,message",
    [
        (["vision=x.onnx"], "unknown role 'vision'; valid roles: image-encoder, text-encoder"),
        (["image-encoder=a.onnx"], "missing -m text-encoder=PATH"),
        (["image-encoder=a", "image-encoder=b"], "given twice"),
    ],
)
def test_model_role_errors(models, message, tmp_path, capsys):
    args = ["eval", "--dataset", str(tmp_path)]
    for m in models:
        args += ["-m", m]
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_option_errors(clip_folder, tmp_path, capsys):
    root = str(shapes_folder(tmp_path / "d", broken=False))
    cases = [
        (["--task", "zero-shot-detection"], "choose one of: zero-shot-image-classification, zero-shot-retrieval"),
        (["--baseline", "torch"], "needs --model-id"),
        (["--baseline", "onnx"], "not supported"),
        (["--column", "image=img"], "KEY one of input_column, label_column, caption_column"),
        (["--templates", "nope"], "unknown template set 'nope'"),
        (["--class-names", str(tmp_path / "none.txt")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["eval", "-m", str(clip_folder), "--dataset", root, "-q", *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra


def test_recall_at_k_known_answers():
    from clipforge.evaluation.scores import classification_metrics, recall_at_k

    similarity = np.array(
        [
            [0.9, 0.1, 0.0, 0.5],  # truth 0: rank 1
            [0.8, 0.2, 0.7, 0.1],  # truth 1: rank 3
            [0.1, 0.3, 0.2, 0.4],
        ]
    )  # truth {0, 2}: best true one at rank 3
    got = recall_at_k(similarity, [{0}, {1}, {0, 2}], ks=(1, 2, 3))
    assert got == pytest.approx({"R@1": 100 / 3, "R@2": 100 / 3, "R@3": 100.0})
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    m = classification_metrics(scores, np.array([1, 1, 2, 2]), ["a", "b", "c"])
    assert (m["top1"], m["predictions"]) == (50.0, [1, 0, 2, 1])
    assert m["per_class"] == {"b": 50.0, "c": 50.0} and m["mean_per_class_recall"] == 50.0


def _independent_recall(folder, rows) -> dict:
    """Recall@k computed here from the runtime's embeddings, with numpy's argsort (12 captions, 6 images)."""
    from clipforge.models import ZeroShotModel

    model = ZeroShotModel.from_onnx(folder)
    images = model.embed_images([r["image"]["bytes"] for r in rows])
    captions = [c for r in rows for c in r["captions"]]
    owner = np.repeat(np.arange(len(rows)), 2)
    sim = images @ model.embed_texts(captions).T
    t2i = np.argsort(-sim.T, axis=1, kind="stable")
    i2t = np.argsort(-sim, axis=1, kind="stable")
    return {
        "text_to_image": {
            f"R@{k}": 100 * np.mean([owner[t] in t2i[t, :k] for t in range(len(captions))]) for k in (1, 5, 10)
        },
        "image_to_text": {
            f"R@{k}": 100 * np.mean([bool(set(np.flatnonzero(owner == i)) & set(i2t[i, :k])) for i in range(len(rows))])
            for k in (1, 5, 10)
        },
    }


def test_retrieval_recall(clip_folder, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(buf, "PNG")
        rows.append(
            {"image": {"bytes": buf.getvalue(), "path": None}, "captions": [f"picture number {i}", f"another view {i}"]}
        )
    rows.append({"image": {"bytes": b"junk", "path": None}, "captions": ["lost"]})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert (
        main(
            [
                "eval",
                "-m",
                str(clip_folder),
                "--task",
                "zero-shot-retrieval",
                "--dataset",
                str(tmp_path / "pairs.parquet"),
                "--json",
                str(out),
                "--report",
                str(md),
                "-q",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())["onnx"]
    assert (report["images"], report["captions"], report["unreadable"]) == (6, 12, 1)
    want = _independent_recall(clip_folder, rows[:6])
    assert report["text_to_image"] == pytest.approx(want["text_to_image"])
    assert report["image_to_text"] == pytest.approx(want["image_to_text"])
    assert "I→T R@1" in md.read_text()
