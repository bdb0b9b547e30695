"""`tokenizers`-only tokenization vs the HF tokenizers, with the padding/truncation HF's zero-shot pipeline uses."""

from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from clipforge.export import export_model
from clipforge.runtime.text import TextTokenizer

CORPUS = [
    "This is a photo of a red circle.",
    "A PHOTO of a Dog!!!",
    "it's 3 o'clock, we're late; aren't we? (yes) [no] {maybe} #tag @user $5 50% a&b",
    "Café naïve résumé Ærøskøbing straße",
    "emoji 🙂🐶🚗 and CJK 漢字 かな",
    "  leading and   trailing   whitespace\t\ttabs\nnewlines  ",
    "",
    "   ",
    "ﬁ ligature, full-width ＡＢＣ, roman Ⅻ",
    "word " * 120,
    "x" * 300,
    "a very long prompt " * 30 + "that ends here.",
    "<|endoftext|> literal special <|startoftext|>",
]


@pytest.fixture(scope="module")
def exported(tiny_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return {f: export_model(p, root / f, show_progress=False) for f, p in tiny_checkpoints.items()}


def _hf(family, folder, texts):
    tok = AutoTokenizer.from_pretrained(folder)
    if family == "siglip":
        return tok(texts, padding="max_length", max_length=64, truncation=True)["input_ids"]
    return tok(texts, padding=True, truncation=True)["input_ids"]


def test_ids_identical_to_hf(exported, tiny_checkpoint):
    family, folder = tiny_checkpoint
    result = exported[family]
    tok = TextTokenizer.from_folder(result.path, result.manifest.text)
    assert tok.encode(CORPUS).input_ids.tolist() == _hf(family, folder, CORPUS)
    for text in CORPUS:  # one at a time too: padding differs from the batch for CLIP
        assert tok.encode([text]).input_ids.tolist() == _hf(family, folder, [text])


def test_truncation_is_flagged_and_ends_in_eos(exported, tiny_checkpoint):
    family, _ = tiny_checkpoint
    result = exported[family]
    tok = TextTokenizer.from_folder(result.path, result.manifest.text)
    enc = tok.encode(["short", "word " * 200])
    assert enc.truncated == [False, True]
    assert enc.input_ids.shape[1] == result.manifest.text.context_length
    assert enc.input_ids[1, -1] == result.manifest.text.eos_id and enc.attention_mask[1].all()


def test_runtime_modules_do_not_import_torch(exported):
    folder = exported["siglip"].path
    code = f"""
import sys
from clipforge.specs import Manifest
from clipforge.runtime.text import TextTokenizer
from clipforge.runtime.images import preprocess
from PIL import Image
m = Manifest.load({str(folder)!r})
TextTokenizer.from_folder({str(folder)!r}, m.text).encode(["a cat"])
preprocess([Image.new("RGB", (40, 30))], m.image)
sys.exit(1 if {{"torch", "transformers"}} & set(sys.modules) else 0)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
