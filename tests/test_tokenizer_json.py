"""One text path for every HF fast tokenizer (``TextSpec.kind = "tokenizers"``): the checkpoint's own
tokenizer.json run by ``tokenizers``, truncated and padded as HF does, gives the ids and masks of the HF tokenizer
(AutoTokenizer on the same folder) for a Gemma-style BPE with byte fallback (SigLIP 2), a BERT-style WordPiece and
an XLM-R-style Unigram, all trained locally; on the tricky-text corpus, random texts, both padding and truncation
sides, and with the runtime's lower-casing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_text import CORPUS, _random_texts
from transformers import AutoTokenizer

from clipforge.export.tokenizer_files import save_runtime_tokenizer
from clipforge.families.base import tokenizer_json_text_spec
from clipforge.runtime.text import TextTokenizer
from clipforge.testing.tokenizers import save_gemma_tokenizer, save_unigram_tokenizer, save_wordpiece_tokenizer

BUILDERS = {"gemma": save_gemma_tokenizer, "wordpiece": save_wordpiece_tokenizer, "unigram": save_unigram_tokenizer}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def folders(request, tmp_path_factory):
    """(name, the HF tokenizer's folder, the folder the export writes from the loaded tokenizer)."""
    hf_folder = tmp_path_factory.mktemp(f"hf-{request.param}")
    BUILDERS[request.param](hf_folder)
    runtime_folder = tmp_path_factory.mktemp(f"rt-{request.param}")
    save_runtime_tokenizer(AutoTokenizer.from_pretrained(hf_folder), runtime_folder)
    return request.param, hf_folder, runtime_folder


def _spec(hf, padding: str, lowercase_texts: bool = False):
    return tokenizer_json_text_spec(
        hf, context_length=64, padding=padding, uses_attention_mask=True, lowercase_texts=lowercase_texts
    )


def _hf_call(padding: str) -> dict:
    return {"padding": "max_length" if padding == "max_length" else True}


def _assert_same(runtime_folder, hf, spec, texts, hf_texts=None) -> None:
    got = TextTokenizer.from_folder(runtime_folder, spec).encode(texts)
    want = hf(hf_texts or texts, truncation=True, max_length=64, **_hf_call(spec.padding))
    bad = [t for t, g, w in zip(texts, got.input_ids.tolist(), want["input_ids"]) if g != w]
    assert bad == []
    np.testing.assert_array_equal(got.attention_mask, want["attention_mask"])


@pytest.mark.parametrize("padding", ["max_length", "longest"])
def test_ids_and_masks_equal_hf(folders, padding):
    name, hf_folder, runtime_folder = folders
    hf = AutoTokenizer.from_pretrained(hf_folder)
    spec = _spec(hf, padding)
    assert spec.kind == "tokenizers" and spec.padding_side == "right"
    _assert_same(runtime_folder, hf, spec, CORPUS)
    _assert_same(runtime_folder, hf, spec, _random_texts(seed=2, count=400, max_parts=40))
    for text in CORPUS:  # one at a time: "longest" pads to each text's own length
        _assert_same(runtime_folder, hf, spec, [text])


def test_byte_fallback_and_truncation_are_exercised(folders):
    """The corpus reaches what this path must get right: byte pieces (Gemma), cut texts, specials kept."""
    name, hf_folder, runtime_folder = folders
    hf = AutoTokenizer.from_pretrained(hf_folder)
    enc = TextTokenizer.from_folder(runtime_folder, _spec(hf, "max_length")).encode(CORPUS)
    assert any(enc.truncated) and not all(enc.truncated)
    cut = enc.input_ids[enc.truncated.index(True)]
    assert cut[-1] == _spec(hf, "max_length").eos_id
    if name == "gemma":
        tokens = hf.convert_ids_to_tokens(enc.input_ids[next(i for i, t in enumerate(CORPUS) if "🙂" in t)])
        assert "<0xF0>" in tokens  # emoji bytes through byte fallback


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_and_truncation_sides(folders, side):
    _, hf_folder, runtime_folder = folders
    hf = AutoTokenizer.from_pretrained(hf_folder, padding_side=side, truncation_side=side)
    spec = _spec(hf, "longest")
    assert (spec.padding_side, spec.truncation_side) == (side, side)
    _assert_same(runtime_folder, hf, spec, CORPUS)


def test_lowercase_texts_is_hf_on_lowered_text(folders):
    name, hf_folder, runtime_folder = folders
    hf = AutoTokenizer.from_pretrained(hf_folder)
    spec = _spec(hf, "max_length", lowercase_texts=True)
    assert spec.lowercase
    _assert_same(runtime_folder, hf, spec, CORPUS, hf_texts=[t.lower() for t in CORPUS])
    if name != "wordpiece":  # these keep case themselves: lower-casing changes the ids of mixed-case text
        plain = TextTokenizer.from_folder(runtime_folder, _spec(hf, "max_length")).encode(["A Photo of a Dog"])
        lowered = TextTokenizer.from_folder(runtime_folder, spec).encode(["A Photo of a Dog"])
        assert plain.input_ids.tolist() != lowered.input_ids.tolist()


def test_spec_records_the_tokenizer(folders):
    name, hf_folder, _ = folders
    spec = _spec(AutoTokenizer.from_pretrained(hf_folder), "max_length")
    want = {
        "gemma": ({"bos": 2, "eos": 1, "pad": 0, "unk": 3, "mask": 4}, False),
        "wordpiece": ({"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}, True),
        "unigram": ({"bos": 0, "pad": 1, "eos": 2, "unk": 3, "cls": 0, "sep": 2}, False),
    }[name]
    assert {k: v for k, v in spec.special_tokens.items() if k != "mask" or name != "unigram"} == want[0]
    assert spec.lowercase == want[1]  # BERT-uncased's normaliser lower-cases; the others keep case
    assert spec.eos_id == spec.special_tokens.get("eos", spec.special_tokens.get("sep"))
    assert dataclasses.replace(spec) == spec
