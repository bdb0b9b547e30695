"""SigLIP 2 (fixed resolution) in HF format: a ``SiglipModel`` with a Gemma-style BPE tokenizer (byte fallback,
``<eos>`` appended). It exports, loads in the torch-free runtime with HF's ids, matches PyTorch, lower-cases texts
by default (as SigLIP 2 was trained) or keeps case (``keep_case``, HF pipeline parity); an export whose runtime
would tokenize differently fails in one line and leaves nothing behind."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from transformers import AutoImageProcessor, AutoTokenizer

from clipforge.errors import InputError, ValidationError
from clipforge.export import ExportOptions, export_model
from clipforge.export.runtime_check import check_runtime
from clipforge.export.samples import TRICKY_TEXTS
from clipforge.families.siglip import SiglipFamily
from clipforge.runtime.model import ZeroShotModel
from clipforge.specs import MANIFEST_SCHEMA_VERSION, Manifest

LABELS = ["A Photo of a Red Circle", "BLUE Square", "a green STAR", "Two Cats on a Sofa", "the Eiffel Tower"]
HF_CALL = {"padding": "max_length", "max_length": 64, "truncation": True}


@pytest.fixture(scope="module")
def exported(tiny_siglip2, tmp_path_factory):
    """keep_case -> the tiny SigLIP 2 exported with that option (the library's default; the CLI's --keep-case)."""
    from clipforge.cli.main import main

    root = tmp_path_factory.mktemp("siglip2")
    export_model(tiny_siglip2, root / "keep-False", show_progress=False)
    assert main(["export", str(tiny_siglip2), "-o", str(root / "keep-True"), "--keep-case", "-q"]) == 0
    return {keep: root / f"keep-{keep}" for keep in (False, True)}


def _torch_text(checkpoint, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import SiglipModel

    model = SiglipModel.from_pretrained(checkpoint).eval()
    ids = AutoTokenizer.from_pretrained(checkpoint)(texts, return_tensors="pt", **HF_CALL)["input_ids"]
    with torch.no_grad():
        out = model.get_text_features(input_ids=ids).pooler_output.numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_manifest_records_the_text_path(exported):
    text = Manifest.load(exported[False]).text
    assert (text.kind, text.lowercase_texts, text.lowercase, text.uses_attention_mask) == (
        "tokenizers",
        True,
        True,
        False,
    )
    assert (text.padding, text.context_length, text.padding_side, text.pad_id, text.eos_id) == (
        "max_length",
        64,
        "right",
        0,
        1,
    )
    assert text.special_tokens == {"bos": 2, "eos": 1, "pad": 0, "unk": 3, "mask": 4}
    assert Manifest.load(exported[True]).text.lowercase_texts is False


def test_folder_is_self_contained_and_ids_equal_hf(exported, tiny_siglip2):
    """The exported folder's own tokenizer files load in transformers; the runtime's ids equal them on the
    tricky texts (lower-cased first by default; as they are with keep_case)."""
    for keep, folder in exported.items():
        assert (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file()
        hf = AutoTokenizer.from_pretrained(folder)
        assert type(hf).__name__ == "GemmaTokenizer"
        want = hf([t if keep else t.lower() for t in TRICKY_TEXTS], **HF_CALL)["input_ids"]
        assert hf(TRICKY_TEXTS)["input_ids"] == AutoTokenizer.from_pretrained(tiny_siglip2)(TRICKY_TEXTS)["input_ids"]
        assert ZeroShotModel.from_onnx(folder).tokenizer.encode(TRICKY_TEXTS).input_ids.tolist() == want


def test_embeddings_match_pytorch(exported, tiny_siglip2):
    import torch
    from transformers import SiglipModel

    from clipforge.export.samples import odd_images

    kept = ZeroShotModel.from_onnx(exported[True])
    assert np.abs(kept.embed_texts(LABELS) - _torch_text(tiny_siglip2, LABELS)).max() <= 1e-4
    lowered = ZeroShotModel.from_onnx(exported[False])
    want = _torch_text(tiny_siglip2, [t.lower() for t in LABELS])
    assert np.abs(lowered.embed_texts(LABELS) - want).max() <= 1e-4
    images = odd_images()[:6]
    pixels = AutoImageProcessor.from_pretrained(tiny_siglip2, backend="pil")(images=images, return_tensors="pt")
    with torch.no_grad():
        ref = SiglipModel.from_pretrained(tiny_siglip2).eval().get_image_features(**pixels).pooler_output.numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(lowered.embed_images(images) - ref).max() <= 1e-4


def test_keep_case_changes_mixed_case_labels_only(exported):
    lowered, kept = (ZeroShotModel.from_onnx(exported[k]) for k in (False, True))
    low = ["a photo of a red circle", "two cats"]
    np.testing.assert_array_equal(lowered.embed_texts(low), kept.embed_texts(low))
    cos = (lowered.embed_texts(LABELS) * kept.embed_texts(LABELS)).sum(1)
    assert cos.min() < 0.9999  # mixed case reaches the model differently


def test_keep_case_is_refused_where_nothing_is_lower_cased(tiny_clip, tmp_path, capsys):
    from clipforge.cli.main import main

    with pytest.raises(InputError, match="keep_case=True applies to SigLIP 2"):
        export_model(tiny_clip, tmp_path / "out", ExportOptions(keep_case=True), show_progress=False)
    assert main(["export", str(tiny_clip), "-o", str(tmp_path / "out"), "--keep-case", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--keep-case applies to SigLIP 2" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_an_exported_folder_answers_keep_case(exported):
    from clipforge.models import model_folder

    assert model_folder(exported[True], options={"keep_case": True}) == exported[True]
    with pytest.raises(InputError, match="keep_case"):
        model_folder(exported[False], options={"keep_case": True})


def test_torch_baseline_follows_the_export(exported, tiny_siglip2):
    """eval's PyTorch baseline lower-cases where the export does, and keeps case where it was exported so."""
    from clipforge.evaluation.baseline_torch import TorchZeroShot

    for keep, folder in exported.items():
        want = ZeroShotModel.from_onnx(folder).embed_texts(LABELS)
        got = TorchZeroShot(str(tiny_siglip2), keep_case=keep).embed_texts(LABELS)
        assert np.abs(got - want).max() <= 1e-4


def test_a_broken_tokenizer_file_is_caught(exported, tiny_siglip2, tmp_path):
    """tokenizer.json edited (byte fallback off: bytes of unknown characters become <unk>) -> one-line failure."""
    folder = tmp_path / "broken"
    shutil.copytree(exported[False], folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["byte_fallback"] = False
    (folder / "tokenizer.json").write_text(json.dumps(data))
    manifest = Manifest.load(folder)
    processor = AutoImageProcessor.from_pretrained(tiny_siglip2, backend="pil")
    tokenizer = AutoTokenizer.from_pretrained(tiny_siglip2)
    assert check_runtime(exported[False], tokenizer, processor, manifest.text, manifest.image) == []
    failures = check_runtime(folder, tokenizer, processor, manifest.text, manifest.image)
    assert len(failures) == 1 and "\n" not in failures[0]
    assert re.search(r"gives other ids than GemmaTokenizer on \d+ of 20 test texts, first ", failures[0])


@pytest.mark.slow
def test_the_old_spec_fails_the_export_and_leaves_nothing(tiny_siglip2, tmp_path, monkeypatch):
    """The bug this guards against: a Gemma BPE recorded as SigLIP's SentencePiece path (what clipforge did
    before "tokenizers" existed). The graphs validate; the runtime check refuses the folder."""
    from dataclasses import replace

    fixed = SiglipFamily.text_spec
    monkeypatch.setattr(SiglipFamily, "text_spec", lambda *a: replace(fixed(*a), kind="sentencepiece"))
    with pytest.raises(ValidationError) as err:
        export_model(tiny_siglip2, tmp_path / "out", show_progress=False)
    assert "runtime cannot load the exported tokenizer" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_broken_pixels_are_caught(exported, tiny_siglip2):
    from dataclasses import replace

    manifest = Manifest.load(exported[False])
    processor = AutoImageProcessor.from_pretrained(tiny_siglip2, backend="pil")
    tokenizer = AutoTokenizer.from_pretrained(tiny_siglip2)
    wrong = replace(manifest.image, resample=3)  # bicubic where the processor resizes bilinearly
    failures = check_runtime(exported[False], tokenizer, processor, manifest.text, wrong)
    assert len(failures) == 1 and failures[0].startswith("runtime pre-processing differs from SiglipImageProcessor")


def build_classify_index_search(exported_folder, labels, query: str, tmp_path, capsys):
    """The downstream steps on an exported folder: an int8-dynamic build, classify 4 odd images with ``labels``,
    index them and search ``query`` through the CLI; returns (built folder, database)."""
    from clipforge.cli.main import main
    from clipforge.export.samples import odd_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        odd_image("RGB", (40 + 9 * i, 50), seed=i).save(photos / f"{i}.png")
    built = tmp_path / "int8"
    assert main(["build", "-m", str(exported_folder), "-o", str(built), "--quantize", "int8-dynamic", "-q"]) == 0
    assert Manifest.load(built).build["roles"]["text-encoder"]["quantize"] == "int8-dynamic"
    capsys.readouterr()
    assert main(["classify", str(photos), "-l", ",".join(labels), "-m", str(built), "--json", "-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 4 and all(len(r["predictions"]) == 2 for r in out)
    db = tmp_path / "photos.db"
    assert main(["index", str(photos), "--db", str(db), "-m", str(built), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", query, "--db", str(db), "--json", "-k", "2"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2, hits
    return built, db


@pytest.mark.slow
def test_build_classify_index(exported, tmp_path, capsys):
    built, _ = build_classify_index_search(exported[False], LABELS, "A Red Circle", tmp_path, capsys)
    manifest = Manifest.load(built)
    assert manifest.text.kind == "tokenizers" and manifest.text.lowercase_texts


def test_v2_manifest_loads_with_the_defaults(exported, tmp_path):
    """A manifest written before schema 3 (no lowercase_texts, sides, special tokens) loads with the defaults."""
    folder = tmp_path / "v2"
    shutil.copytree(exported[False], folder)
    data = json.loads((folder / "manifest.json").read_text())
    text = {k: v for k, v in data["text"].items() if k not in ("lowercase_texts", "padding_side", "special_tokens")}
    text.pop("truncation_side")
    (folder / "manifest.json").write_text(json.dumps(dict(data, schema_version=2, text=dict(text, kind="bpe"))))
    manifest = Manifest.load(folder)
    assert manifest.schema_version == MANIFEST_SCHEMA_VERSION and manifest.text.lowercase_texts is False
    assert (manifest.text.padding_side, manifest.text.truncation_side, manifest.text.special_tokens) == (
        "right",
        "right",
        {},
    )
