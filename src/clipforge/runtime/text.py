"""Tokenization with the `tokenizers` library only, giving the ids the HF tokenizers give.

Any HF fast tokenizer (``TextSpec.kind = "tokenizers"``: SigLIP 2's Gemma BPE with byte fallback, WordPiece,
Unigram, ...): the folder's ``tokenizer.json`` is HF's own pipeline (the checkpoint's normaliser, pre-tokeniser,
model and post-processor), run as is, truncated as HF's ``truncation=True`` truncates (``tokenizers``' own
truncation, on the spec's side, the special tokens kept) and padded on the spec's side. ``lowercase_texts``
lower-cases texts first (SigLIP 2 was trained on lower-cased text; its tokenizer keeps case).

CLIP (``kind = "bpe"``): the same file as is (NFC, whitespace runs to one space, lower-case, byte-level BPE,
``<|startoftext|> … <|endoftext|>``). Texts longer than the context length keep their first
``context_length - 1`` tokens and end in EOS (HF's ``truncation=True``).

open_clip's ``HFTokenizer`` (any of the kinds above behind open_clip's cleaning): ``text.clean`` cleans each text
first as open_clip does (``runtime.text_cleaning``), and ``text.strip_sep_token`` writes 0 where the tokenizer put
its ``[SEP]`` (CLIPA's BERT tokenizer), as open_clip does after padding.

A batch is padded to its longest text (``padding=True``) or to the context length (``padding="max_length"``).

SigLIP: HF's ``SiglipTokenizer`` is a slow SentencePiece tokenizer with Python-side rules that no
``tokenizer.json`` can express, so they are reproduced here: ``"▁"`` is prefixed to the text; the text is split
on the added tokens (``</s>``, ``<unk>``, honouring their lstrip/rstrip flags); each piece is canonicalised
(lower-case, ASCII punctuation removed, whitespace runs collapsed, stripped: ``canonicalize_text``) and encoded
as ``"<unk>" + piece`` with the first tokens of ``"<unk>"`` dropped (so an unknown character right after an added
token is swallowed, as in HF); ``</s>`` is appended unless the ids already end with it, after cutting the text to
``context_length - 1`` tokens. SentencePiece's normaliser is ported too (``_SentencePieceNormalizer``): the
``tokenizers`` ``Precompiled`` normaliser drops combining marks after compatibility characters (``"ｕ̂"``), which
SentencePiece keeps. Only the Unigram lattice search runs in ``tokenizers``.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge.errors import InputError
from clipforge.runtime.text_cleaning import openclip_clean
from clipforge.specs import TextSpec

SPACE = "\u2581"  # SentencePiece's "▁"
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(" {2,}")


@dataclass
class Encoded:
    """``input_ids`` and ``attention_mask`` (int64 [N, L]); ``truncated[i]`` says text i was cut to fit."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    truncated: list[bool]

    def __iter__(self):  # ``ids, mask = tokenizer.encode(texts)``
        return iter((self.input_ids, self.attention_mask))


def canonicalize(text: str, lowercase: bool = True) -> str:
    """SigLIP's ``canonicalize_text``: lower-case, drop ASCII punctuation, collapse whitespace, strip."""
    text = text.lower() if lowercase else text
    return _WHITESPACE.sub(" ", text.translate(_PUNCTUATION)).strip()


class TextTokenizer:
    """Texts -> (input_ids, attention_mask) as the checkpoint's HF tokenizer gives them, following a ``TextSpec``."""

    def __init__(self, tokenizer_json: str, spec: TextSpec, hf_added_tokens: list[dict] | None = None):
        self.spec = spec
        if spec.kind == "sentencepiece":
            self._ids = _SiglipIds(json.loads(tokenizer_json), spec, hf_added_tokens)
        elif spec.kind == "openclip":
            self._ids = _OpenClipIds(json.loads(tokenizer_json), spec)
        elif spec.kind == "tokenizers":
            self._ids = _TokenizerJsonIds(tokenizer_json, spec)
        else:
            self._ids = _FastIds(tokenizer_json)

    @classmethod
    def from_folder(cls, folder: str | Path, spec: TextSpec) -> TextTokenizer:
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise InputError(f"{folder} has no tokenizer.json; re-export the model with 'clipforge export'")
        return cls(path.read_text(encoding="utf-8"), spec, _hf_added_tokens(Path(folder)))

    def ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Unpadded ids per text (special tokens included), truncated to the context length as HF does."""
        if isinstance(texts, str):
            raise InputError("pass a list of texts, not a single string")
        texts = [str(t) for t in texts]
        if self.spec.clean:  # open_clip's HFTokenizer cleans texts before its HF tokenizer sees them
            texts = [openclip_clean(t, self.spec.clean) for t in texts]
        ids, truncated = self._ids(texts, self.spec.context_length, self.spec.eos_id)
        sep = self.spec.special_tokens.get("sep")
        if self.spec.strip_sep_token and sep is not None:  # open_clip writes 0 where the tokenizer put [SEP]
            ids = [[0 if i == sep else i for i in seq] for seq in ids]
        return ids, truncated

    def encode(self, texts: Sequence[str]) -> Encoded:
        ids, truncated = self.ids(texts)
        if self.spec.padding == "max_length":
            length = self.spec.context_length
        else:
            length = max((len(i) for i in ids), default=1)
        input_ids = np.full((len(ids), length), self.spec.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        left = self.spec.padding_side == "left"
        for row, seq in enumerate(ids):
            where = slice(length - len(seq), length) if left else slice(0, len(seq))
            input_ids[row, where] = seq
            mask[row, where] = 1
        return Encoded(input_ids, mask, truncated)


def _hf_added_tokens(folder: Path) -> list[dict] | None:
    """The added tokens HF splits texts on, from ``tokenizer_config.json`` (None when it has none)."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return None
    decoder = json.loads(path.read_text(encoding="utf-8")).get("added_tokens_decoder")
    return [dict(v, id=int(k)) for k, v in decoder.items()] if decoder else None


# --- CLIP: the tokenizer.json as is ------------------------------------------------------------------------
class _FastIds:
    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def __call__(self, texts: list[str], limit: int, eos: int) -> tuple[list[list[int]], list[bool]]:
        ids = [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=True)]
        truncated = [len(i) > limit for i in ids]
        return [_cut(i, limit, eos) if cut else i for i, cut in zip(ids, truncated)], truncated


# --- any HF fast tokenizer: the tokenizer.json as is, with tokenizers' truncation --------------------------------
class _TokenizerJsonIds:
    def __init__(self, tokenizer_json: str, spec: TextSpec):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(spec.context_length, direction=spec.truncation_side)
        self.lower = spec.lowercase_texts

    def __call__(self, texts: list[str], limit: int, eos: int) -> tuple[list[list[int]], list[bool]]:
        texts = [t.lower() for t in texts] if self.lower else texts
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        return [e.ids for e in encodings], [bool(e.overflowing) for e in encodings]


def _cut(ids: list[int], limit: int, eos: int) -> list[int]:
    """``tokenizers`` truncation: the text is cut, the special tokens around it stay (a trailing EOS stays last)."""
    return ids[: limit - 1] + [eos] if ids[-1] == eos else ids[:limit]


# --- open_clip: its SimpleTokenizer's cleaning and split, then the BPE ---------------------------------------
OPENCLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class _OpenClipIds:
    """``SimpleTokenizer.__call__``: ``[sot] + BPE(words of the cleaned text) + [eot]``, cut to the context length
    with the last id set to eot. Words are found with open_clip's regex (the ``regex`` module, as open_clip);
    each word's ids come from tokenizer.json's byte-level BPE and are cached, as open_clip caches them."""

    def __init__(self, data: dict, spec: TextSpec):
        import regex
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(json.dumps(data))
        self.special = {t["content"]: t["id"] for t in data["added_tokens"] if t.get("special")}
        pattern = "|".join(map(regex.escape, self.special)) + "|" + OPENCLIP_SPLIT
        self.split = regex.compile(pattern, regex.IGNORECASE)
        # open_clip's special tokens are [start, end]: the start id is the one that is not the end id
        starts = [i for i in self.special.values() if i != spec.eos_id]
        if len(starts) != 1:
            raise InputError(
                "tokenizer.json of an open_clip export must hold exactly its start and end tokens; "
                "re-export the model with 'clipforge export'"
            )
        self.bos, self.cache = starts[0], dict(self.special)

    def _word_ids(self, words: list[str]) -> None:
        if len(self.cache) > 200_000:
            self.cache = dict(self.special)
        new = sorted({w for w in words if w not in self.cache})
        if new:
            for word, enc in zip(
                new, self.tokenizer.encode_batch([[w] for w in new], is_pretokenized=True, add_special_tokens=False)
            ):
                self.cache[word] = enc.ids

    def __call__(self, texts: list[str], limit: int, eos: int) -> tuple[list[list[int]], list[bool]]:
        words = [self.split.findall(openclip_clean(t)) for t in texts]
        self._word_ids([w for ws in words for w in ws])
        out, truncated = [], []
        for ws in words:
            ids = [self.bos]
            for w in ws:
                ids += [self.cache[w]] if isinstance(self.cache[w], int) else self.cache[w]
            ids.append(eos)
            truncated.append(len(ids) > limit)
            out.append(ids[: limit - 1] + [eos] if len(ids) > limit else ids)
        return out, truncated


# --- SigLIP: HF's slow SiglipTokenizer, step for step ------------------------------------------------------
class _SiglipIds:
    def __init__(self, data: dict, spec: TextSpec, hf_added_tokens: list[dict] | None):
        if data["model"]["type"] != "Unigram":
            raise InputError(
                f"tokenizer.json holds a {data['model']['type']} model where SigLIP needs a "
                "SentencePiece Unigram one; re-export the model with 'clipforge export'"
            )
        self.lowercase = spec.lowercase
        self.added = {t["content"]: t for t in (hf_added_tokens or data["added_tokens"])}
        self.special = {c for c, t in self.added.items() if t.get("special", True)}
        self._split = re.compile("(" + "|".join(map(re.escape, sorted(self.added, key=len, reverse=True))) + ")")
        self.normalizer = _SentencePieceNormalizer.from_tokenizer_json(data)
        self.segmenter = _segmenter(data)
        vocab = data["model"]["vocab"]
        self.unk = vocab[data["model"]["unk_id"]][0]
        self.unk_length = len(self._segment([self.unk])[0][0])

    def __call__(self, texts: list[str], limit: int, eos: int) -> tuple[list[list[int]], list[bool]]:
        out, truncated = [], []
        for ids in self._content_ids(texts):
            cut = len(ids) + 1 > limit  # HF counts one special token (the EOS) before truncating
            ids = ids[: limit - 1] if cut else ids
            out.append(ids if ids and ids[-1] == eos else ids + [eos])  # HF's _add_eos_if_not_present
            truncated.append(cut)
        return out, truncated

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        """Ids without EOS: ``SiglipTokenizer.tokenize`` then ``convert_tokens_to_ids``."""
        pieces = [self._split_added(SPACE + t.replace(SPACE, " ")) for t in texts]
        plain = [p for parts in pieces for p in parts if p and p not in self.added]
        encoded = iter(zip(*self._segment([self.unk + canonicalize(p, self.lowercase) for p in plain])))
        result = []
        for parts in pieces:
            tokens: list[tuple[str, int]] = []
            for part in parts:
                if part in self.added:
                    tokens.append((part, self.added[part]["id"]))
                elif part:
                    pairs = list(zip(*next(encoded)))  # HF keeps all tokens when there are fewer than "<unk>"'s
                    tokens += pairs[self.unk_length :] if len(pairs) >= self.unk_length else pairs
            if len(tokens) > 1 and tokens[0][0] == SPACE and tokens[1][0] in self.special:
                tokens = tokens[1:]
            result.append([i for _, i in tokens])
        return result

    def _segment(self, texts: list[str]) -> tuple[list[list[str]], list[list[int]]]:
        normalized = [self.normalizer(t) for t in texts]
        encodings = self.segmenter.encode_batch(normalized, add_special_tokens=False) if normalized else []
        return [e.tokens for e in encodings], [e.ids for e in encodings]

    def _split_added(self, text: str) -> list[str]:
        """``PreTrainedTokenizer.tokenize``'s split on added tokens, with their lstrip/rstrip/single_word rules."""
        tokens = [t for t in self._split.split(text) if t] if self.added else [text]
        for i, token in enumerate(tokens):
            if token not in self.added:
                continue
            rule = self.added[token]
            left = tokens[i - 1] if i > 0 else None
            right = tokens[i + 1] if i < len(tokens) - 1 else None
            if rule.get("rstrip") and right:
                tokens[i + 1] = right.lstrip()
            if rule.get("lstrip") and left:
                tokens[i - 1] = left.rstrip()
            if rule.get("single_word"):
                if left and left[-1] != " ":
                    tokens[i - 1] += token
                    tokens[i] = ""
                elif right and right[0] != " ":
                    tokens[i + 1] = token + tokens[i + 1]
                    tokens[i] = ""
        return tokens


def _segmenter(data: dict):
    """The Unigram model alone, with the pieces SentencePiece never matches in text (control pieces such as
    ``</s>``, and the unknown piece) renamed to strings a normalised text cannot contain (it has no spaces)."""
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    model = data["model"]
    hidden = {t["id"] for t in data["added_tokens"] if t.get("special")} | {model["unk_id"]}
    vocab = [(f" {piece} {i}" if i in hidden else piece, score) for i, (piece, score) in enumerate(model["vocab"])]
    return Tokenizer(Unigram(vocab, unk_id=model["unk_id"], byte_fallback=model.get("byte_fallback", False)))


class _SentencePieceNormalizer:
    """SentencePiece's ``Normalizer::Normalize``: at each position the longest rule of the precompiled
    character map (a darts-clone double-array trie over UTF-8 bytes) applies, else the character is kept; then
    the whitespace rules: leading and trailing spaces removed, runs collapsed, a dummy "▁" prefix, spaces as "▁"."""

    def __init__(self, charsmap: bytes | None, add_dummy_prefix: bool, remove_extra_whitespaces: bool):
        self.add_dummy_prefix, self.remove_extra = add_dummy_prefix, remove_extra_whitespaces
        self.units, self.strings = _decode_charsmap(charsmap) if charsmap else ([0], b"")
        self._strings: dict[int, str] = {}
        # printable ASCII characters that start no rule except through a non-ASCII next character: a run of them,
        # each followed by ASCII, maps to itself (no trie walk needed)
        unsafe = {path[0] for path, leaf in self._ascii_paths() if leaf or len(path) > 1}
        plain = "".join(chr(b) for b in range(0x20, 0x7F) if b not in unsafe)
        self._plain = re.compile(f"[{re.escape(plain)}]*")
        self._run = re.compile(b"(?:[" + re.escape(plain.encode()) + rb"](?![\x80-\xff]))+")

    @classmethod
    def from_tokenizer_json(cls, data: dict) -> _SentencePieceNormalizer:
        """The normaliser ``export.tokenizer_files`` describes with ``tokenizers`` parts: Precompiled (the map),
        Strip/Replace (remove_extra_whitespaces) and the Metaspace prepend scheme (add_dummy_prefix)."""
        norm = data.get("normalizer") or {}
        parts = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
        charsmap = next((p["precompiled_charsmap"] for p in parts if p.get("type") == "Precompiled"), None)
        remove_extra = any(p.get("type") in ("Strip", "Replace") for p in parts)
        pre = data.get("pre_tokenizer") or {}
        pre = next((p for p in pre.get("pretokenizers", [pre]) if p.get("type") == "Metaspace"), {})
        add_prefix = pre.get("prepend_scheme", "always") != "never" and pre.get("add_prefix_space", True)
        return cls(base64.b64decode(charsmap) if charsmap else None, add_prefix, remove_extra)

    def __call__(self, text: str) -> str:
        if self._plain.fullmatch(text):  # printable ASCII no rule applies to: only the whitespace rules
            if not text:
                return ""
            words = [w for w in text.split(" ") if w] if self.remove_extra else [text]
            return (SPACE if self.add_dummy_prefix and words else "") + SPACE.join(words).replace(" ", SPACE)
        return self._whitespace(self._rules(text.encode("utf-8", "replace")))

    def _whitespace(self, pieces: list[str]) -> str:
        if self.remove_extra:
            while pieces and pieces[0] == " ":
                pieces.pop(0)
        if not pieces:
            return ""
        out, prev_space = [" "] if self.add_dummy_prefix else [], self.remove_extra
        for piece in pieces:
            if prev_space:
                piece = piece.lstrip(" ")
            if piece:
                out.append(piece)
                prev_space = piece.endswith(" ") and self.remove_extra
        normalized = "".join(out).replace(" ", SPACE)
        return normalized.rstrip(SPACE) if self.remove_extra else normalized

    def _ascii_paths(self) -> list[tuple[bytes, bool]]:
        """Every ASCII-only path of the trie, and whether a rule ends there (a depth-first walk)."""
        paths, stack = [], [(self._child_base(0), b"")]
        while stack:
            base, prefix = stack.pop()
            for byte in range(1, 0x80):
                node = base ^ byte
                if node < len(self.units) and self.units[node] & 0x800000FF == byte:
                    paths.append((prefix + bytes([byte]), bool((self.units[node] >> 8) & 1)))
                    stack.append((self._child_base(node), prefix + bytes([byte])))
        return paths

    def _child_base(self, node: int) -> int:
        unit = self.units[node]
        return node ^ (unit >> 10 << ((unit & (1 << 9)) >> 6))

    def _rules(self, data: bytes) -> list[str]:
        pieces, pos = [], 0
        while pos < len(data):
            run = self._run.match(data, pos)
            if run:  # characters that map to themselves; collapse spaces as the per-character rules would
                pieces.append(_SPACES.sub(" ", run.group().decode()) if self.remove_extra else run.group().decode())
                pos = run.end()
                continue
            value, length = self._longest_match(data, pos)
            if length:
                pieces.append(self._string(value))
            else:
                length = _utf8_length(data[pos])
                pieces.append(data[pos : pos + length].decode("utf-8", "replace"))
            pos += length
        return pieces

    def _string(self, offset: int) -> str:
        if offset not in self._strings:
            self._strings[offset] = self.strings[offset : self.strings.index(b"\0", offset)].decode("utf-8", "replace")
        return self._strings[offset]

    def _longest_match(self, data: bytes, pos: int) -> tuple[int, int]:
        """darts-clone ``commonPrefixSearch`` from ``pos``, keeping the longest hit: (string offset, length)."""
        units, best = self.units, (0, 0)
        node = self._child_base(0)
        for i in range(pos, len(data)):
            node ^= data[i]
            if node >= len(units) or units[node] & 0x800000FF != data[i]:
                break
            unit = units[node]
            node = self._child_base(node)
            if (unit >> 8) & 1:
                best = (units[node] & 0x7FFFFFFF, i + 1 - pos)
        return best


def _decode_charsmap(blob: bytes) -> tuple[list[int], bytes]:
    """SentencePiece's precompiled map: <trie size: uint32 LE><double-array trie units><NUL-separated strings>."""
    size = int.from_bytes(blob[:4], "little")
    return np.frombuffer(blob[4 : 4 + size], dtype="<u4").tolist(), blob[4 + size :]


def _utf8_length(lead: int) -> int:
    """Bytes in the UTF-8 character that starts with ``lead``."""
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    return 4 if lead >> 3 == 0b11110 else 1
