"""Multilingual search: the multilingual fixture (a tiny MetaCLIP 2-style ``MetaClip2Model`` with an XLM-R-style
Unigram tokenizer, trained on the shapes set captioned in English, German and Spanish) exported, indexed and
searched through the CLI. German and Spanish queries find their shapes, German labels classify the test split, the
runtime's ids equal the HF tokenizer's, and the in-graph tokenizer is refused in one line (onnxruntime-extensions
cannot run this Unigram tokenizer as ``tokenizers`` does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_text import _random_texts
from transformers import AutoTokenizer

from clipforge.cli.main import main
from clipforge.export.samples import TRICKY_TEXTS
from clipforge.runtime.text import TextTokenizer
from clipforge.specs import Manifest
from clipforge.testing import multilingual

QUERIES = [  # (query, the class folder its images are in)
    ("ein roter Kreis", "red circle"),
    ("ein blaues Quadrat", "blue square"),
    ("una cruz azul", "blue cross"),
    ("un triángulo amarillo", "yellow triangle"),
    ("a green cross", "green cross"),
]


@pytest.fixture(scope="module")
def exported(trained_multilingual, tmp_path_factory):
    """The fixture exported by the CLI (the export validates graphs, runtime ids and pixels against HF)."""
    out = tmp_path_factory.mktemp("multilingual") / "onnx"
    assert main(["export", str(trained_multilingual), "-o", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def db(exported, shapes_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("multilingual-db") / "shapes.db"
    assert main(["index", str(shapes_dataset.folder("test")), "--db", str(path), "-m", str(exported), "--quiet"]) == 0
    return path


def test_manifest_and_ids_equal_hf(exported, trained_multilingual):
    manifest = Manifest.load(exported)
    assert (manifest.family, manifest.text.kind, manifest.text.uses_attention_mask) == ("metaclip2", "tokenizers", True)
    texts = TRICKY_TEXTS + [c for row in multilingual.captions() for c in row] + _random_texts(7, 200, 30)
    got = TextTokenizer.from_folder(exported, manifest.text).encode(texts)
    hf = AutoTokenizer.from_pretrained(trained_multilingual)
    want = hf(texts, padding=True, truncation=True, max_length=77, return_tensors="np")
    np.testing.assert_array_equal(got.input_ids, want["input_ids"])
    np.testing.assert_array_equal(got.attention_mask, want["attention_mask"])
    assert "▁Kreis" in hf.convert_ids_to_tokens(got.input_ids[texts.index("ein roter Kreis")])  # a learnt word


@pytest.mark.parametrize(("query", "folder"), QUERIES)
def test_german_and_spanish_queries_find_their_shapes(db, capsys, query, folder):
    capsys.readouterr()
    assert main(["search", query, "--db", str(db), "-k", "10", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    right = sum(Path(h["path"]).parent.name == folder for h in hits)
    assert len(hits) == 10 and right >= 8, (query, [Path(h["path"]).parent.name for h in hits])


def test_classify_with_german_labels(exported, shapes_dataset, capsys):
    labels = multilingual.class_labels("de")  # "roter Kreis", "rotes Quadrat", ... in class order
    capsys.readouterr()
    code = main(
        ["classify", str(shapes_dataset.folder("test")), "-l", ",".join(labels), "-t", "{}", "-m", str(exported)]
        + ["-k", "1", "--json"]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 200
    english = dict(zip(labels, shapes_dataset.class_names))
    top1 = np.mean([english[r["predictions"][0]["label"]] == Path(r["image"]).parent.name for r in rows])
    assert top1 >= 0.8, top1


def test_pipeline_tokenizer_is_refused_in_one_line(exported, tmp_path, capsys):
    capsys.readouterr()
    assert main(["export-pipeline", str(exported), "-o", str(tmp_path / "p" / "m"), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert "Unigram" in err and "one text at a time" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_export_classifier_with_german_labels_and_preprocessing(exported, shapes_dataset, tmp_path):
    """The fixed-label classifier embeds its labels at export time with the runtime (tokenizer.json), so a
    Unigram tokenizer that has no in-graph form still gives a one-file classifier; it agrees with the runtime."""
    from clipforge.pipeline._graph import extensions_session
    from clipforge.runtime.model import ZeroShotModel

    labels, out = multilingual.class_labels("de"), tmp_path / "clf.onnx"
    args = ["export-classifier", str(exported), "-o", str(out), "-l", ",".join(labels), "-t", "{}"]
    assert main([*args, "--with-preprocessing"]) == 0
    session, model = extensions_session(out), ZeroShotModel.from_onnx(exported)
    files = [sorted((shapes_dataset.folder("test") / c).iterdir())[0] for c in shapes_dataset.class_names]
    want = model.classify(files, labels, template="{}", top_k=1)
    got = [labels[int(session.run(None, {"image": np.fromfile(f, np.uint8)})[1][0])] for f in files]
    assert got == [w[0]["label"] for w in want]
    assert np.mean([g == label for g, label in zip(got, labels)]) >= 0.8  # one image of every class, in order


def test_int8_build_keeps_german_classification(exported, shapes_dataset, tmp_path, capsys):
    """``build --quantize int8-dynamic`` on the multilingual export: the manifest keeps the tokenizer path and German
    labels still classify the test split."""
    built = tmp_path / "int8"
    assert main(["build", "-m", str(exported), "-o", str(built), "--quantize", "int8-dynamic", "-q"]) == 0
    assert Manifest.load(built).text.kind == "tokenizers"
    labels = multilingual.class_labels("de")
    capsys.readouterr()
    args = ["classify", str(shapes_dataset.folder("test")), "-l", ",".join(labels), "-t", "{}", "-m", str(built)]
    assert main([*args, "-k", "1", "--json"]) == 0
    english = dict(zip(labels, shapes_dataset.class_names))
    rows = json.loads(capsys.readouterr().out)
    top1 = np.mean([english[r["predictions"][0]["label"]] == Path(r["image"]).parent.name for r in rows])
    assert top1 >= 0.8, top1


def test_metaclip2_with_a_slow_sentencepiece_tokenizer_is_refused_in_one_line(tmp_path):
    """The mt5 MetaCLIP 2 checkpoints name a slow ``SiglipTokenizer``; until a test covers them they are refused."""
    from clipforge.errors import UnsupportedModelError
    from clipforge.families.metaclip2 import MetaClip2Family
    from clipforge.testing.tokenizers import save_siglip_tokenizer

    tokenizer = save_siglip_tokenizer(tmp_path)
    with pytest.raises(UnsupportedModelError, match="slow SiglipTokenizer") as caught:
        MetaClip2Family().text_spec(None, tokenizer)
    assert "\n" not in str(caught.value)
