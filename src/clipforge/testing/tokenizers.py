"""Small but real tokenizers, trained locally, for tiny test and demo checkpoints.

CLIP gets a byte-level BPE with CLIP's pre-tokenizer and ``</w>`` word suffix, built through
``transformers.CLIPTokenizer`` so its ``tokenizer.json`` has the same structure as OpenAI's.
SigLIP gets a SentencePiece Unigram model, loaded by ``transformers.SiglipTokenizer``.
"""

from __future__ import annotations

import io
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from tokenizers import normalizers as tk_normalizers

from clipforge.testing.corpus import training_corpus

CLIP_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_alphabet() -> list[str]:
    return pre_tokenizers.ByteLevel.alphabet()


def _learn_clip_merges(texts: list[str], vocab_size: int) -> list[tuple[str, str]]:
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = tk_normalizers.Sequence(
        [tk_normalizers.NFC(), tk_normalizers.Replace(Regex(r"\s+"), " "), tk_normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=_byte_alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return [tuple(m) for m in tok.model.get_merges()] if hasattr(tok.model, "get_merges") else _merges_from_json(tok)


def _merges_from_json(tok: Tokenizer) -> list[tuple[str, str]]:
    import json

    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def clip_vocab_and_merges(vocab_size: int = 1000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-ordered vocabulary: bytes, bytes + ``</w>``, merges, then the two special tokens."""
    alphabet = _byte_alphabet()
    merges = _learn_clip_merges(training_corpus(), vocab_size)
    tokens = list(alphabet) + [a + "</w>" for a in alphabet]
    seen = set(tokens)
    kept = []
    for a, b in merges:
        merged = a + b
        if merged in seen:
            continue
        seen.add(merged)
        tokens.append(merged)
        kept.append((a, b))
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, kept


def save_clip_tokenizer(folder: Path, context_length: int = 77, vocab_size: int = 1000):
    """Write a CLIP tokenizer to ``folder``; returns the ``CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges(vocab_size)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context_length)
    tok.save_pretrained(str(folder))
    return tok


def save_siglip_tokenizer(folder: Path, context_length: int = 64, vocab_size: int = 256):
    """Train a SentencePiece Unigram model and write a SigLIP tokenizer to ``folder``."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_corpus()),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    model_file = folder / "spiece.model"
    model_file.write_bytes(buffer.getvalue())
    # SigLIP was trained without a text attention mask (pads with </s> and attends to it): like the published
    # checkpoints' processors, return input_ids only, so HF pipelines do not pass a mask the model never saw.
    tok = SiglipTokenizer(vocab_file=str(model_file), model_max_length=context_length, model_input_names=["input_ids"])
    tok.save_pretrained(str(folder))
    return tok
