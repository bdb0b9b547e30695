"""In-graph tokenizers for ``text.kind == "tokenizers"`` (HF fast tokenizers run from their tokenizer.json):
the SentencePiece-style BPE with byte fallback of SigLIP 2 runs in onnxruntime-extensions' ``HfJsonTokenizer`` with
ids identical to the HF tokenizer's on the tricky-text corpus and random texts (NUL characters excepted: the op's
strings end there); what the extensions cannot run as ``tokenizers`` does (Unigram, WordPiece, texts lower-cased
first) is refused in one line that says why."""

from __future__ import annotations

import numpy as np
import pytest
from test_text import _random_texts
from transformers import AutoTokenizer

from clipforge.errors import UnsupportedModelError
from clipforge.export.cases import tokenize
from clipforge.export.samples import TRICKY_TEXTS
from clipforge.export.tokenizer_files import save_runtime_tokenizer
from clipforge.families.base import tokenizer_json_text_spec
from clipforge.pipeline._graph import extensions_session
from clipforge.pipeline.checks import VALIDATION_TEXTS
from clipforge.pipeline.text_graph import text_model
from clipforge.testing.tokenizers import save_gemma_tokenizer, save_unigram_tokenizer, save_wordpiece_tokenizer

BUILDERS = {
    "gemma": save_gemma_tokenizer,
    "unigram": lambda folder: save_unigram_tokenizer(folder, precompiled=True),
    "wordpiece": save_wordpiece_tokenizer,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (the HF tokenizer, the folder the export writes from it)."""
    out = {}
    for name, build in BUILDERS.items():
        hf_folder, runtime_folder = tmp_path_factory.mktemp(f"hf-{name}"), tmp_path_factory.mktemp(f"rt-{name}")
        build(hf_folder)
        hf = AutoTokenizer.from_pretrained(hf_folder)
        save_runtime_tokenizer(hf, runtime_folder)
        out[name] = (hf, runtime_folder)
    return out


def _spec(hf, padding: str, lowercase_texts: bool = False):
    return tokenizer_json_text_spec(
        hf, context_length=64, padding=padding, uses_attention_mask=True, lowercase_texts=lowercase_texts
    )


@pytest.mark.parametrize("padding", ["max_length", "longest"])
def test_bpe_with_byte_fallback_in_the_graph_equals_hf(folders, padding):
    hf, folder = folders["gemma"]
    spec = _spec(hf, padding)
    session = extensions_session(text_model(folder, spec))
    texts = TRICKY_TEXTS + VALIDATION_TEXTS + _random_texts(seed=5, count=300, max_parts=40)
    texts = [t for t in texts if "\x00" not in t]  # the op's strings end at NUL (documented)
    assert len(texts) > 250
    ids, mask = session.run(None, {"text": np.array(texts, dtype=object)})
    want = tokenize(hf, texts, spec)
    bad = [t for t, a, b in zip(texts, ids.tolist(), want["input_ids"].tolist()) if a != b]
    assert bad == [] and ids.shape == want["input_ids"].shape
    np.testing.assert_array_equal(mask, want["attention_mask"])
    # what this path must get right is in the corpus: byte pieces, cut texts, texts ending right after "<"
    tokens = hf.convert_ids_to_tokens(ids[texts.index(TRICKY_TEXTS[4])])
    assert "<0xF0>" in tokens
    assert (mask.sum(1) == 64).any() and any(t.endswith("<") for t in texts)


@pytest.mark.parametrize(
    ("name", "lowercase_texts", "reason"),
    [
        ("unigram", False, "runs a Unigram tokenizer.json one text at a time"),
        ("wordpiece", False, "refuses WordPiece"),
        ("gemma", True, "StringLower leaves Greek, full-width and title-case letters"),
    ],
)
def test_what_the_extensions_cannot_run_is_refused_in_one_line(folders, name, lowercase_texts, reason):
    hf, folder = folders[name]
    with pytest.raises(UnsupportedModelError, match=reason) as caught:
        text_model(folder, _spec(hf, "longest", lowercase_texts))
    assert "\n" not in str(caught.value) and "ZeroShotModel" in str(caught.value)


@pytest.mark.parametrize("name", ["unigram", "wordpiece"])
def test_the_refusals_are_still_true(folders, name):
    """The refusal is measured, not assumed: onnxruntime-extensions' HfJsonTokenizer on the raw tokenizer.json
    fails to load (WordPiece) or gives other ids than ``tokenizers`` (Unigram). When a new release fixes this, this
    test fails and the graph can take these tokenizers."""
    from onnx import helper

    from clipforge.pipeline._graph import CONTRIB, INT64, STRING, GraphBuilder

    hf, folder = folders[name]
    g = GraphBuilder("t/")
    vocab, config = ((folder / f).read_text(encoding="utf-8") for f in ("tokenizer.json", "tokenizer_config.json"))
    out = g.op("HfJsonTokenizer", ["text"], 1, domain=CONTRIB, tokenizer_vocab=vocab, tokenizer_config=config)
    g.nodes.append(helper.make_node("Identity", [out], ["ids"]))
    model = g.model(
        [helper.make_tensor_value_info("text", STRING, ["n"])], [helper.make_tensor_value_info("ids", INT64, None)]
    )
    texts = ["a photo of a dog.", "   ", "word word ", "</s> first"]
    try:
        session = extensions_session(model, quiet=True)
        got = [session.run(None, {"text": np.array([t], dtype=object)})[0].tolist() for t in texts]
    except Exception:  # onnxruntime raises its own exception types
        assert name == "wordpiece"
        return
    want = [hf(t)["input_ids"] for t in texts]
    assert got != want


@pytest.mark.slow
def test_siglip2_pipeline_with_keep_case(tiny_siglip2, tmp_path):
    """export-pipeline on a SigLIP 2 export: kept case -> the text graph validates (ids identical to HF's, the
    embeddings those of ZeroShotModel); the default lower-casing export is refused in one line, writing nothing."""
    from clipforge.cli.main import main
    from clipforge.export import ExportOptions, export_model
    from clipforge.pipeline.export_graphs import export_pipeline

    keep = export_model(tiny_siglip2, tmp_path / "keep", ExportOptions(keep_case=True), show_progress=False).path
    result = export_pipeline(keep, tmp_path / "p" / "s2", show_progress=False)
    assert result.validation["text"]["ids_identical"] and result.validation["text"]["min_cosine"] > 0.9999
    lower = export_model(tiny_siglip2, tmp_path / "lower", show_progress=False).path
    assert main(["export-pipeline", str(lower), "-o", str(tmp_path / "q" / "s2"), "-q"]) != 0
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())


def test_a_bpe_template_that_adds_more_than_eos_is_refused(folders, tmp_path):
    """Only '$A <eos>' was measured: a BOS in the template (Gemma LLM-style) is refused, not guessed."""
    import json
    import shutil

    hf, folder = folders["gemma"]
    shutil.copytree(folder, tmp_path / "bos")
    path = tmp_path / "bos" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["post_processor"]["single"].insert(0, {"SpecialToken": {"id": "<bos>", "type_id": 0}})
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(UnsupportedModelError, match="appends EOS alone"):
        text_model(tmp_path / "bos", _spec(hf, "longest"))
