"""`tokenizers`-only tokenization vs the HF tokenizers: identical ids, with the padding/truncation HF's zero-shot
pipeline and processors use (CLIP: padding=True, truncation=True; SigLIP: padding="max_length", truncation=True,
max_length=64). The SigLIP reference is transformers 5's slow SentencePiece ``SiglipTokenizer``."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from clipforge.errors import InputError
from clipforge.export.samples import TRICKY_TEXTS
from clipforge.export.tokenizer_files import save_runtime_tokenizer
from clipforge.registry import get_family
from clipforge.runtime.text import TextTokenizer, canonicalize
from clipforge.specs import TextSpec

CORPUS = TRICKY_TEXTS  # the texts export checks every folder's tokenizer on
pytestmark = pytest.mark.filterwarnings("ignore:This sequence already has </s>")  # HF, on "... </s>" texts

HF_CALL = {
    "clip": {"padding": True, "truncation": True},
    "siglip": {"padding": "max_length", "truncation": True, "max_length": 64},
}


@pytest.fixture(scope="module")
def runtime_folders(hf_checkpoints, tmp_path_factory):
    """family -> (folder written by save_runtime_tokenizer, TextSpec read by the family)."""
    out = {}
    for name, checkpoint in hf_checkpoints.items():
        family = get_family(name)
        tokenizer = family.load_tokenizer(checkpoint)
        folder = tmp_path_factory.mktemp(f"tok-{name}")
        save_runtime_tokenizer(tokenizer, folder)
        out[name] = folder, family.text_spec(family.load_model(checkpoint), tokenizer)
    return out


def _hf_ids(family: str, folder, texts: list[str]) -> list[list[int]]:
    return AutoTokenizer.from_pretrained(folder)(texts, **HF_CALL[family])["input_ids"]


def _random_texts(seed: int, count: int, max_parts: int) -> list[str]:
    parts = list("abcXYZ ,.!?'\"-_()[]{}<>/\\|@#$%^&*~`;:\t\n") + [
        "▁",
        "é",
        "É",
        "ß",
        "İ",
        "ﬁ",
        "Ａ",
        "！",
        "“",
        "”",
        "…",
        "—",
        "🙂",
        "👍🏽",
        "漢",
        "\u200b",
        "\u00a0",
        "\u3000",
        "</s>",
        "<unk>",
        "<pad>",
        "<|endoftext|>",
        "</S>",
        "  ",
        "\r\n",
        "Ⅻ",
        "½",
        "\u0301",
        "ﷺ",
        "12",
        "3.5",
        "ｕ\u0302",
        "＜pad＞",
        "photo",
        " of a ",
        "Dog",
        "\u0000",
        "\ufeff",
        "ﾊﾟ",
        "가",
        "A\u030a",
    ]
    rng = random.Random(seed)
    return ["".join(rng.choice(parts) for _ in range(rng.randint(0, max_parts))) for _ in range(count)]


# --- parity with HF -------------------------------------------------------------------------------------
def test_ids_identical_to_hf(runtime_folders, tiny_checkpoint):
    family, checkpoint = tiny_checkpoint
    folder, spec = runtime_folders[family]
    tok = TextTokenizer.from_folder(folder, spec)
    assert tok.encode(CORPUS).input_ids.tolist() == _hf_ids(family, checkpoint, CORPUS)
    for text in CORPUS:  # one at a time too: CLIP pads to the longest text of the batch
        assert tok.encode([text]).input_ids.tolist() == _hf_ids(family, checkpoint, [text]), repr(text)


def test_ids_identical_to_hf_on_random_texts(runtime_folders, tiny_checkpoint):
    family, checkpoint = tiny_checkpoint
    folder, spec = runtime_folders[family]
    tok = TextTokenizer.from_folder(folder, spec)
    texts = _random_texts(seed=0, count=600, max_parts=40)
    got, want = tok.encode(texts).input_ids.tolist(), _hf_ids(family, checkpoint, texts)
    assert [t for t, g, w in zip(texts, got, want) if g != w] == []


def _sentencepiece_variant(folder, **options) -> None:
    """A SigLIP tokenizer over a SentencePiece model trained with non-default normaliser options."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    from clipforge.testing.corpus import training_corpus

    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    settings = dict(
        vocab_size=220,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        character_coverage=0.995,
        hard_vocab_limit=False,
        minloglevel=2,
        normalization_rule_name="nmt_nfkc",
    )
    legacy = options.pop("legacy", True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_corpus()), model_writer=buffer, **{**settings, **options}
    )
    (folder / "spiece.model").write_bytes(buffer.getvalue())
    SiglipTokenizer(vocab_file=str(folder / "spiece.model"), legacy=legacy).save_pretrained(str(folder))


@pytest.mark.parametrize(
    "options",
    [
        {"add_dummy_prefix": False},
        {"remove_extra_whitespaces": False},
        {"normalization_rule_name": "identity"},
        {"legacy": False},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_sentencepiece_options_are_carried(tmp_path, options):
    """Normaliser flags travel through tokenizer.json; unknown characters (coverage < 1) are handled like HF."""
    _sentencepiece_variant(tmp_path / "hf", **options)
    hf = AutoTokenizer.from_pretrained(tmp_path / "hf")
    save_runtime_tokenizer(hf, tmp_path / "rt")
    spec = TextSpec(
        context_length=64,
        padding="max_length",
        lowercase=True,
        pad_id=hf.pad_token_id,
        eos_id=hf.eos_token_id,
        uses_attention_mask=False,
        kind="sentencepiece",
    )
    texts = CORPUS + _random_texts(seed=1, count=300, max_parts=30)
    got = TextTokenizer.from_folder(tmp_path / "rt", spec).encode(texts).input_ids.tolist()
    want = hf(texts, **HF_CALL["siglip"])["input_ids"]
    assert [t for t, g, w in zip(texts, got, want) if g != w] == []


def test_sentencepiece_normaliser_matches_sentencepiece(runtime_folders, tiny_siglip):
    import sentencepiece as spm

    from clipforge.runtime.text import _SentencePieceNormalizer

    folder, _ = runtime_folders["siglip"]
    ours = _SentencePieceNormalizer.from_tokenizer_json(json.loads((folder / "tokenizer.json").read_text()))
    reference = spm.SentencePieceProcessor(model_file=str(tiny_siglip / "spiece.model"))
    rng = random.Random(0)
    chars = [chr(c) for c in range(0x3400) if not 0xD800 <= c < 0xE000]
    texts = [f"a{c}\u0301 {c}" for c in chars] + ["".join(rng.choices(chars, k=8)) for _ in range(3000)]
    assert [t for t in texts if ours(t) != reference.normalize(t)] == []


# --- padding, truncation, masks ---------------------------------------------------------------------------
def test_padding_masks_and_unpacking(runtime_folders, tiny_checkpoint):
    family, _ = tiny_checkpoint
    folder, spec = runtime_folders[family]
    ids, mask = TextTokenizer.from_folder(folder, spec).encode(["a cat", "a photo of a big dog"])
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape
    assert ids.shape[1] == (spec.context_length if family == "siglip" else mask.sum(1).max())
    assert mask[0].sum() < mask[1].sum() and (ids[mask == 0] == spec.pad_id).all()
    assert (mask[:, :-1] >= mask[:, 1:]).all()  # ones then zeros
    for row, length in zip(ids, mask.sum(1)):
        assert row[length - 1] == spec.eos_id


def test_truncation_is_flagged_and_ends_in_eos(runtime_folders, tiny_checkpoint):
    family, checkpoint = tiny_checkpoint
    folder, spec = runtime_folders[family]
    tok = TextTokenizer.from_folder(folder, spec)
    texts = ["short", "word " * 200]
    enc = tok.encode(texts)
    assert enc.truncated == [False, True]
    assert enc.input_ids.shape[1] == spec.context_length
    assert enc.input_ids[1, -1] == spec.eos_id and enc.attention_mask[1].all()
    assert enc.input_ids.tolist() == _hf_ids(family, checkpoint, texts)


def test_truncation_boundary(runtime_folders, tiny_checkpoint):
    """A text that fits exactly is not truncated; one more token is."""
    family, checkpoint = tiny_checkpoint
    folder, spec = runtime_folders[family]
    tok = TextTokenizer.from_folder(folder, spec)
    fits = max(n for n in range(spec.context_length + 2) if not tok.ids(["a " * n])[1][0])
    texts = ["a " * fits, "a " * (fits + 1)]  # one token per "a " in both tiny vocabularies
    ids, truncated = tok.ids(texts)
    assert truncated == [False, True] and len(ids[0]) == len(ids[1]) == spec.context_length
    assert tok.encode(texts).input_ids.tolist() == _hf_ids(family, checkpoint, texts)


def test_bad_inputs(runtime_folders, tmp_path):
    folder, spec = runtime_folders["clip"]
    with pytest.raises(InputError, match="not a single string"):
        TextTokenizer.from_folder(folder, spec).encode("a cat")
    with pytest.raises(InputError, match="has no tokenizer.json"):
        TextTokenizer.from_folder(tmp_path, spec)


def test_canonicalize_is_siglips(tiny_siglip):
    hf = AutoTokenizer.from_pretrained(tiny_siglip)
    for text in CORPUS:
        assert canonicalize(text) == hf.canonicalize_text(text)


# --- the files ----------------------------------------------------------------------------------------------
def test_saved_folder_loads_in_tokenizers_and_transformers(runtime_folders, tiny_checkpoint):
    family, checkpoint = tiny_checkpoint
    folder, spec = runtime_folders[family]
    texts = ["a photo of a dog", "two red circles"]
    assert _hf_ids(family, folder, CORPUS) == _hf_ids(family, checkpoint, CORPUS)  # transformers still loads it
    plain = Tokenizer.from_file(str(folder / "tokenizer.json"))  # and tokenizers alone gives HF's ids on plain text
    assert [e.ids for e in plain.encode_batch(texts)] == AutoTokenizer.from_pretrained(checkpoint)(texts)["input_ids"]


def test_runtime_modules_do_not_import_torch(runtime_folders):
    folder, spec = runtime_folders["siglip"]
    code = f"""
import sys
from PIL import Image
from clipforge.specs import ImageSpec, TextSpec
from clipforge.runtime.text import TextTokenizer
from clipforge.runtime.images import preprocess
spec = TextSpec(**{dataclasses.asdict(spec)!r})
TextTokenizer.from_folder({str(folder)!r}, spec).encode(["a cat", "Café ＡＢＣ </s>"])
preprocess([Image.new("RGBA", (40, 30))], ImageSpec("exact", (32, 32), None, 2, 1 / 255, (.5,) * 3, (.5,) * 3))
loaded = {{"torch", "transformers", "sentencepiece"}} & set(sys.modules)
sys.exit(f"imported {{loaded}}" if loaded else 0)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
