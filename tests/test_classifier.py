"""export-classifier: one graph whose scores match ZeroShotModel.classify, labels in metadata, clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from clipforge.cli.main import main
from clipforge.runtime.model import ZeroShotModel

LABELS = ["red circle", "blue square", "green cross", "a dog"]


@pytest.fixture(scope="module")
def exported(exported_tiny, hf_checkpoints):
    return {f: exported_tiny[f] for f in hf_checkpoints}


def test_scores_match_runtime_classify(exported, tiny_checkpoint, tmp_path):
    family, _ = tiny_checkpoint
    out = tmp_path / "clf.onnx"
    assert (
        main(
            [
                "export-classifier",
                str(exported[family]),
                "-o",
                str(out),
                "-l",
                ",".join(LABELS),
                "--templates",
                "cifar10",
            ]
        )
        == 0
    )
    model = ZeroShotModel.from_onnx(exported[family])
    images = [np.random.default_rng(i).integers(0, 255, (40, 30 + i, 3), dtype=np.uint8) for i in range(3)]
    from PIL import Image

    pil = [Image.fromarray(a) for a in images]
    scores, index = ort.InferenceSession(str(out)).run(None, {"pixel_values": model.preprocess(pil)})
    from clipforge.zeroshot.templates import get_templates

    want = model.classify(pil, LABELS, template=get_templates("cifar10"), top_k=len(LABELS))
    for row, preds, idx in zip(scores, want, index):
        for p in preds:
            assert abs(row[LABELS.index(p["label"])] - p["score"]) <= 1e-5
        assert LABELS[idx] == preds[0]["label"]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["labels"]) == LABELS and len(json.loads(meta["templates"])) == 18
    assert json.loads(meta["image_size"]) == [32, 32] and len(json.loads(meta["mean"])) == 3


def test_zero_labels_and_bad_template(exported, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n")
    assert (
        main(
            [
                "export-classifier",
                str(exported["clip"]),
                "-o",
                str(tmp_path / "a.onnx"),
                "--labels-file",
                str(tmp_path / "empty.txt"),
            ]
        )
        == 2
    )
    assert "empty" in capsys.readouterr().err
    assert (
        main(
            [
                "export-classifier",
                str(exported["clip"]),
                "-o",
                str(tmp_path / "b.onnx"),
                "-l",
                "a,b",
                "-t",
                "no placeholder",
            ]
        )
        == 2
    )
    assert "placeholder" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_with_preprocessing_takes_png_bytes(exported, tiny_checkpoint, tmp_path):
    """Encoded bytes in; scores equal the runtime's on PNG bytes (pre-processing within one uint8 level)."""
    import io

    from PIL import Image

    from clipforge.pipeline._graph import extensions_session

    family, _ = tiny_checkpoint
    out = tmp_path / "clf_bytes.onnx"
    assert (
        main(
            ["export-classifier", str(exported[family]), "-o", str(out), "-l", ",".join(LABELS), "--with-preprocessing"]
        )
        == 0
    )
    graph = onnx.load(str(out))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert "bytes" in {p.key: p.value for p in graph.metadata_props}["input"]
    model, session = ZeroShotModel.from_onnx(exported[family]), extensions_session(out)
    for size in [(40, 60), (90, 33), (32, 32)]:
        y, x = np.mgrid[0 : size[0], 0 : size[1]]
        array = np.stack([127 + 120 * np.sin(x / 7 + c) * np.cos(y / 5) for c in range(3)], -1).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        scores, index = session.run(None, {"image": np.frombuffer(buffer.getvalue(), np.uint8)})
        want = model.classify([buffer.getvalue()], LABELS, top_k=len(LABELS))[0]
        got = {LABELS[j]: float(s) for j, s in enumerate(scores[0])}
        assert max(abs(got[p["label"]] - p["score"]) for p in want) <= 1e-3
        assert index.tolist() == [int(scores[0].argmax())]
    with pytest.raises(Exception, match="decode_image"):
        session.run(None, {"image": np.frombuffer(b"not an image at all", np.uint8)})
