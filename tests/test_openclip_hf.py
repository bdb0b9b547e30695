"""open_clip models with a Hugging Face tokenizer or text encoder (SigLIP 2 with a timm image encoder, CLIPA's
BERT, XLM-R, RoBERTa, mT5, NLLB) and OpenAI's weights in timm's hub layout: each tiny checkpoint exports, loads in
the torch-free runtime with ids equal to open_clip's own tokenizer (``get_tokenizer``, recomputed here) on the
tricky-text corpus, and matches open_clip's ``encode_image``/``encode_text`` to 1e-4; a tokenizer named in another
repo is copied into the folder; an export whose runtime would tokenise differently fails in one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from clipforge.errors import ModelNotFoundError, ValidationError
from clipforge.export.exporter import export_model
from clipforge.export.runtime_check import check_runtime
from clipforge.export.samples import TRICKY_TEXTS
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.text_cleaning import CLEAN_MODES, openclip_clean
from clipforge.specs import Manifest
from clipforge.testing.tiny_openclip import save_openclip_checkpoint

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from test_images import _image  # noqa: E402
from test_siglip2 import build_classify_index_search  # noqa: E402
from test_text import _random_texts  # noqa: E402

# name -> (tiny kind, layout)
CHECKPOINTS = {
    "siglip": ("siglip", "hub"),
    "bert": ("bert", "hub"),
    "xlmr": ("xlmr", "hub"),
    "roberta": ("roberta", "hub"),
    "mt5": ("mt5", "hub"),
    "nllb": ("nllb", "hub"),
    "siglip-tokenizer-elsewhere": ("siglip", "hub-tokenizer-elsewhere"),
    "timm-openai": ("vit", "timm-openai"),
}
DOWNSTREAM = ["siglip", "xlmr", "bert", "timm-openai"]
EXTRA_TEXTS = [
    "&amp;lt;b&amp;gt; html &quot;twice&quot;",
    "mojibake: cafÃ© rÃ©sumÃ©",
    "snake_case_label and under_scores",
    "[SEP] inside [CLS] text [SEP]",
    "Ein Foto von einem roten Kreis; una foto de un círculo rojo",
]
LABELS = ["a red circle", "Ein blaues Quadrat", "un triángulo verde", "A YELLOW CROSS"]


def test_clean_modes_equal_open_clip():
    texts = TRICKY_TEXTS + EXTRA_TEXTS + _random_texts(seed=5, count=100, max_parts=12)
    for mode in CLEAN_MODES:
        reference = open_clip.tokenizer.get_clean_fn(mode)
        assert [openclip_clean(t, mode) for t in texts] == [reference(t) for t in texts], mode


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("openclip-hf-sources")
    return {
        name: save_openclip_checkpoint(root / name, kind=kind, layout=layout, seed=i)
        for i, (name, (kind, layout)) in enumerate(CHECKPOINTS.items())
    }


@pytest.fixture(scope="module")
def exported(sources, tmp_path_factory):
    root = tmp_path_factory.mktemp("openclip-hf-exports")
    return {name: export_model(src, root / name, show_progress=False).path for name, src in sources.items()}


def _reference(source):
    """open_clip's own model, tokenizer and transform for ``source`` (the tokenizer from ``hf_tokenizer_name``
    where the folder holds none, as clipforge's loader does)."""
    from clipforge.families.openclip_hf import folder_tokenizer

    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{source}")
    return model.eval(), folder_tokenizer(open_clip, source), transform


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_ids_and_embeddings_equal_open_clip(name, sources, exported):
    model, tokenizer, transform = _reference(sources[name])
    onnx = ZeroShotModel.from_onnx(exported[name])
    texts = TRICKY_TEXTS + EXTRA_TEXTS + _random_texts(seed=7, count=60, max_parts=20)
    ids = onnx.tokenizer.encode(texts).input_ids
    assert ids.tolist() == tokenizer(texts).tolist()
    images = [_image("RGB", (40 + 7 * i, 90 - 11 * i), seed=i) for i in range(3)]
    prompts = TRICKY_TEXTS[:3] + LABELS
    with torch.no_grad():
        want_img = model.encode_image(torch.stack([transform(im) for im in images])).numpy()
        want_txt = model.encode_text(tokenizer(prompts)).numpy()
    got_img = onnx.image_encoder({"pixel_values": onnx.preprocess(images)})
    got_txt = onnx.text_encoder({"input_ids": onnx.tokenizer.encode(prompts).input_ids})
    np.testing.assert_allclose(got_img, want_img, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_txt, want_txt, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_manifest_records_open_clips_cleaning(exported):
    text = {name: Manifest.load(folder).text for name, folder in exported.items()}
    assert (text["siglip"].kind, text["siglip"].clean, text["siglip"].lowercase) == ("tokenizers", "canonicalize", True)
    assert text["bert"].strip_sep_token and text["bert"].clean == "whitespace" and text["bert"].context_length == 32
    assert text["bert"].special_tokens["sep"] == 3
    assert (text["xlmr"].clean, text["xlmr"].pad_id, text["xlmr"].padding) == ("whitespace", 1, "max_length")
    assert text["timm-openai"].kind == "openclip" and text["timm-openai"].clean == ""
    assert all(Manifest.load(f).schema_version == 4 for f in exported.values())


@pytest.mark.slow
def test_a_tokenizer_from_another_repo_is_copied_into_the_folder(sources, exported):
    source, folder = sources["siglip-tokenizer-elsewhere"], exported["siglip-tokenizer-elsewhere"]
    assert not (source / "tokenizer.json").exists()
    named = json.loads((source / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]["hf_tokenizer_name"]
    copied, original = (json.loads((f / "tokenizer.json").read_text()) for f in (folder, type(source)(named)))
    for part in ("model", "normalizer", "pre_tokenizer", "post_processor", "added_tokens"):
        assert copied[part] == original[part], part
    assert "tokenizer.json" in Manifest.load(folder).files
    with pytest.raises((OSError, ValueError)):  # open_clip itself finds no tokenizer in the folder
        open_clip.get_tokenizer(f"local-dir:{source}")


def test_a_tokenizer_on_an_unreachable_hub_fails_in_one_line(tmp_path, capsys, monkeypatch):
    from clipforge.cli.main import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = save_openclip_checkpoint(tmp_path / "src", kind="bert", layout="hub-tokenizer-elsewhere")
    config = json.loads((source / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "clipforge-nowhere/no-tokenizer"
    (source / "open_clip_config.json").write_text(json.dumps(config))
    assert main(["export", str(source), "-o", str(tmp_path / "out"), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot download tokenizer 'clipforge-nowhere/no-tokenizer'" in err, err
    assert not (tmp_path / "out").exists()
    from clipforge.hub import tokenizer_folder

    with pytest.raises(ModelNotFoundError, match="neither a folder nor a hub id"):
        tokenizer_folder("not a/valid/name")


@pytest.mark.slow
def test_a_broken_tokenizer_file_is_caught_on_the_open_clip_path(sources, exported, tmp_path):
    """tokenizer.json edited (no "▁" before the first word) -> a one-line failure naming open_clip's tokenizer."""
    from clipforge.families.openclip_io import load_openclip
    from clipforge.hub import OpenClipSource

    loaded = load_openclip(OpenClipSource(sources["xlmr"]))
    manifest = Manifest.load(exported["xlmr"])
    assert check_runtime(exported["xlmr"], loaded.tokenizer, loaded.processor, manifest.text, manifest.image) == []
    folder = tmp_path / "broken"
    shutil.copytree(exported["xlmr"], folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    (metaspace,) = [p for p in data["pre_tokenizer"]["pretokenizers"] if p["type"] == "Metaspace"]
    assert metaspace["prepend_scheme"] == "always"
    metaspace["prepend_scheme"] = "never"
    (folder / "tokenizer.json").write_text(json.dumps(data))
    failures = check_runtime(folder, loaded.tokenizer, loaded.processor, manifest.text, manifest.image)
    assert len(failures) == 1 and "\n" not in failures[0]
    assert re.search(r"gives other ids than OpenClipHFTokenizer on \d+ of 20 test texts, first ", failures[0])


@pytest.mark.slow
def test_a_spec_without_open_clips_cleaning_fails_the_export(sources, tmp_path, monkeypatch):
    """The recorded cleaning is what makes the runtime equal open_clip: without it the export fails in one line
    and leaves nothing behind."""
    from clipforge.families.openclip_hf import OpenClipHFTokenizer

    fixed = OpenClipHFTokenizer.text_spec
    monkeypatch.setattr(OpenClipHFTokenizer, "text_spec", lambda self: replace(fixed(self), clean=""))
    with pytest.raises(ValidationError) as err:
        export_model(sources["siglip"], tmp_path / "out", show_progress=False)
    assert "gives other ids than OpenClipHFTokenizer" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", DOWNSTREAM)
def test_build_classify_index_serve(name, exported, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from clipforge.index import Index
    from clipforge.serve import create_app

    built, db = build_classify_index_search(exported[name], LABELS, "Ein roter Kreis", tmp_path, capsys)
    assert Manifest.load(built).text == Manifest.load(exported[name]).text
    model = ZeroShotModel.from_onnx(built)
    idx = Index(db, model)
    with TestClient(create_app(model, idx)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        found = client.post("/v1/search", json={"text": "un círculo rojo", "k": 3})
        assert found.status_code == 200 and len(found.json()["results"]) == 3, found.text
        emb = client.post("/v1/embeddings", json={"input": LABELS})
        assert emb.status_code == 200, emb.text
        got = np.array([d["embedding"] for d in emb.json()["data"]])
        np.testing.assert_allclose(got, model.embed_texts(LABELS), atol=1e-5)
    idx.close()


def _hf_architectures() -> list[str]:
    def names_hf(name: str) -> bool:
        text = (open_clip.get_model_config(name) or {}).get("text_cfg", {})
        return "hf_tokenizer_name" in text or "hf_model_name" in text

    return [name for name in open_clip.list_models() if names_hf(name)]


@pytest.mark.slow
def test_every_hf_architecture_builds_offline_from_stand_ins():
    """Each of open_clip's architectures naming a HF tokenizer or model gets local stand-ins: a tokenizer whose
    pad/end ids are the model's and whose ids fit its vocabulary, and a config with the real dimensions."""
    from transformers import AutoConfig

    from clipforge.testing.hf_stand_ins import offline_config

    names = _hf_architectures()
    assert len(names) == 49
    for name in names:
        text = offline_config(open_clip.get_model_config(name))["text_cfg"]
        tokenizer = open_clip.tokenizer.HFTokenizer(
            text["hf_tokenizer_name"], context_length=text.get("context_length", 77), **text.get("tokenizer_kwargs", {})
        )
        ids = tokenizer(TRICKY_TEXTS)
        if "hf_model_name" in text:
            hf = AutoConfig.from_pretrained(text["hf_model_name"])
            vocab = hf.vocab_size
            assert tokenizer.tokenizer.pad_token_id == hf.pad_token_id, name
        else:
            vocab = text["vocab_size"]
            if "eos_id" in text:  # MetaCLIP 2 "worldwide": pooled at the end token
                assert tokenizer.tokenizer.eos_token_id == text["eos_id"], name
        assert int(ids.max()) < vocab, name
    xlmr = AutoConfig.from_pretrained(
        offline_config(open_clip.get_model_config("xlm-roberta-large-ViT-H-14"))["text_cfg"]["hf_model_name"]
    )
    assert (xlmr.hidden_size, xlmr.num_hidden_layers, xlmr.vocab_size) == (1024, 24, 250002)


@pytest.mark.slow
def test_a_real_hf_architecture_saves_and_loads_offline(tmp_path):
    """``random_model`` + ``save_hub_layout`` on open_clip's own roberta-ViT-B-32 config (real dimensions): the
    folder loads with clipforge's loader, its tokenizer in the folder."""
    from clipforge.families.openclip_io import load_openclip
    from clipforge.hub import OpenClipSource
    from clipforge.testing.tiny_openclip import model_config, random_model, save_hub_layout

    config = model_config(shape="base", arch="roberta-ViT-B-32")
    model = random_model(config)
    assert model.text.transformer.config.hidden_size == 768 and model.text.transformer.config.num_hidden_layers == 12
    folder = save_hub_layout(model, config, tmp_path / "roberta")
    assert (folder / "tokenizer.json").is_file()
    loaded = load_openclip(OpenClipSource(folder))
    assert loaded.tokenizer.text_spec().clean == "whitespace"
    ids = loaded.tokenizer(LABELS)["input_ids"]
    assert ids.shape == (4, 77) and ids[0, 0] == 0 and ids[0, -1] == 1  # <s> first, <pad> (1) after the text


def _hub_cache(root, repo_id: str, files_from) -> dict:
    """A Hugging Face hub cache (HF_HUB_CACHE layout) holding one snapshot of ``repo_id``: what a first download
    would have left, so the hub-id path runs offline."""
    commit = "0" * 40
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files_from, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return {"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_timm_openai_hub_id_resolves_to_open_clip(sources, tmp_path):
    """A plain hub id of timm's layout of OpenAI's weights (``timm/…_clip_224.openai``: timm's config.json, which
    names no transformers model type, beside open_clip's files) exports as the open_clip checkpoint it is."""
    env = {**os.environ, **_hub_cache(tmp_path / "hub", "timm/tiny_clip.openai", sources["timm-openai"])}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "clipforge.cli.main", "export", "timm/tiny_clip.openai", "-o", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Manifest.load(out).family == "openclip"
