"""Small but real tokenizers, trained locally, for tiny test and demo checkpoints.

CLIP gets a byte-level BPE with CLIP's pre-tokenizer and ``</w>`` word suffix, built through
``transformers.CLIPTokenizer`` so its ``tokenizer.json`` has the same structure as OpenAI's.
SigLIP gets a SentencePiece Unigram model, loaded by ``transformers.SiglipTokenizer``. SigLIP 2 gets a Gemma-style
BPE (``▁`` for spaces, byte fallback to ``<0xNN>`` pieces, ``<eos>`` appended) wrapped in ``GemmaTokenizer``; BERT-
and XLM-R-style checkpoints get a WordPiece and a Unigram ``tokenizer.json`` (``save_wordpiece_tokenizer``,
``save_unigram_tokenizer``), T5/mT5-style ones a Unigram with ``</s>`` appended (``save_t5_tokenizer``), all
trained with ``tokenizers`` on the same corpus.
"""

from __future__ import annotations

import io
import json
import random
import string
from collections import Counter
from pathlib import Path

from clipforge.testing.corpus import training_corpus

CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_VOCAB = 49408  # OpenAI CLIP's vocabulary: 512 byte symbols, 48 894 merges, the 2 special tokens
CORPUS_MERGES = 4000  # beyond this many merges, learnt from random words (the corpus has too few words)


def _byte_alphabet() -> list[str]:
    """The 256 byte-level symbols in byte order, as in OpenAI's vocabulary (``ByteLevel.alphabet()`` returns
    them in a different order in every process)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def _clip_words(texts: list[str]) -> Counter:
    """Word frequencies after CLIP's normaliser and pre-tokenizer (byte-level symbols)."""
    from tokenizers import Regex, Tokenizer, models, normalizers as tk_normalizers, pre_tokenizers

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
    words = Counter()
    for text in texts:
        words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)))
    return words


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def learn_clip_merges(texts: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE over CLIP words (last symbol carries ``</w>``). Deterministic: the most frequent pair wins and
    ties go to the lexicographically smallest pair (the ``tokenizers`` trainer breaks ties differently from one
    process to the next, which made fixture checkpoints differ between runs)."""
    words = {tuple(w[:-1]) + (w[-1] + "</w>",): n for w, n in sorted(_clip_words(texts).items())}
    merges = []
    while len(merges) < n_merges:
        pairs = Counter()
        for symbols, n in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        words = {_merge(s, best): n for s, n in words.items()}
    return merges


def random_word_merges(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """About ``count`` BPE merges (CLIP's ``</w>`` convention) learnt by the ``tokenizers`` trainer from random
    lower-case words: a vocabulary of real size (``CLIP_VOCAB``) for measuring what loading and running one costs;
    its tokens mean nothing."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    rng = random.Random(seed)
    words = ("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 12))) for _ in range(5 * count))
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    size = count + 2 * len(string.ascii_lowercase) + 100
    trainer = trainers.BpeTrainer(vocab_size=size, end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(words, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def clip_vocab_and_merges(vocab_size: int = 1000) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-ordered vocabulary of ``vocab_size`` tokens at most: bytes, bytes + ``</w>``, merges (learnt from the
    fixtures' corpus; from random words for a vocabulary of real size), then the two special tokens."""
    alphabet = _byte_alphabet()
    count = vocab_size - 2 * len(alphabet) - 2
    merges = learn_clip_merges(training_corpus(), count) if count <= CORPUS_MERGES else random_word_merges(count)
    tokens = list(alphabet) + [a + "</w>" for a in alphabet]
    seen = set(tokens)
    kept = []
    for a, b in merges:
        merged = a + b
        if len(kept) == count:
            break
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


GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Gemma's first ids
GEMMA_BYTES = [f"<0x{b:02X}>" for b in range(256)]


def gemma_like_tokenizer(vocab_size: int = 600):
    """A ``tokenizers.Tokenizer`` shaped like Gemma's (SigLIP 2): spaces replaced by ``▁``, BPE with byte fallback
    to the 256 ``<0xNN>`` pieces, ``<eos>`` appended. Trained with ``▁``-prefixed words, so no merge crosses a word
    start, as in SentencePiece's BPE."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    trainer = BpeTrainer(
        vocab_size=vocab_size, special_tokens=GEMMA_SPECIALS + GEMMA_BYTES, min_frequency=2, show_progress=False
    )
    tok.train_from_iterator(training_corpus(), trainer)
    # the byte pieces are plain vocabulary in Gemma (byte fallback looks them up), not tokens matched in text
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in GEMMA_BYTES]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")  # GemmaTokenizer's own
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    eos = ("<eos>", GEMMA_SPECIALS.index("<eos>"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", pair="$A <eos> $B <eos>", special_tokens=[eos]
    )
    return tok


def save_gemma_tokenizer(folder: Path, context_length: int = 64, vocab_size: int = 600):
    """Write a SigLIP 2-style ``GemmaTokenizer`` (no BOS, EOS appended, right padding) to ``folder``."""
    from transformers import GemmaTokenizer

    tok = GemmaTokenizer(
        tokenizer_object=gemma_like_tokenizer(vocab_size),
        add_bos_token=False,
        add_eos_token=True,
        model_max_length=context_length,
        padding_side="right",
    )
    tok.save_pretrained(str(folder))
    return tok


def save_wordpiece_tokenizer(folder: Path, context_length: int = 64, vocab_size: int = 500):
    """A BERT-style uncased WordPiece (``BertNormalizer`` lower-cases and strips accents, ``[CLS] … [SEP]``)
    written as ``BertTokenizer`` (transformers' fast one) to ``folder``."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        training_corpus(), WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    )
    cls, sep = ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[cls, sep]
    )
    tok.decoder = decoders.WordPiece()
    hf = BertTokenizer(tokenizer_object=tok, model_max_length=context_length)
    hf.save_pretrained(str(folder))
    return hf


def nmt_nfkc_charsmap() -> bytes:
    """SentencePiece's ``nmt_nfkc`` normalisation rules as a precompiled character map (the map XLM-R's and T5's
    ``tokenizer.json`` carry in their ``Precompiled`` normaliser), taken from a throwaway model trained here."""
    import sentencepiece as spm
    from transformers.convert_slow_tokenizer import import_protobuf

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_corpus()),
        model_writer=buffer,
        vocab_size=100,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return import_protobuf().ModelProto.FromString(buffer.getvalue()).normalizer_spec.precompiled_charsmap


def save_unigram_tokenizer(
    folder: Path,
    context_length: int = 64,
    vocab_size: int = 400,
    texts: list[str] | None = None,
    precompiled: bool = False,
):
    """An XLM-R-style cased Unigram (NFKC, ``▁`` word prefix, ``<s> … </s>``) written as
    ``XLMRobertaTokenizer`` (transformers' fast one) to ``folder``, trained on ``texts`` (default: the English
    corpus). ``precompiled`` normalises as XLM-R's own file does: SentencePiece's ``nmt_nfkc`` map
    (``Precompiled``) instead of ``tokenizers``' NFKC, then runs of spaces to one."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer
    from transformers import XLMRobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(Unigram())
    nfkc = normalizers.Precompiled(nmt_nfkc_charsmap()) if precompiled else normalizers.NFKC()
    tok.normalizer = normalizers.Sequence([nfkc, normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(texts or training_corpus(), trainer)
    tok.add_special_tokens(["<mask>"])
    bos, eos = ("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[bos, eos]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    hf = XLMRobertaTokenizer(tokenizer_object=tok, model_max_length=context_length)
    hf.save_pretrained(str(folder))
    return hf


def save_t5_tokenizer(folder: Path, context_length: int = 64, vocab_size: int = 400):
    """A T5-style Unigram (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2; NFKC, ``▁`` word prefix, ``</s>`` appended, no
    extra ids) written as ``T5Tokenizer`` (transformers' fast one) to ``folder``: SigLIP's and mT5's layout."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer
    from transformers import T5Tokenizer

    tok = Tokenizer(Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(training_corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    hf = T5Tokenizer(tokenizer_object=tok, extra_ids=0, model_max_length=context_length)
    hf.save_pretrained(str(folder))
    return hf
