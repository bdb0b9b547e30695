"""Tokenization as an ONNX graph: ``text`` string [N] -> ``input_ids`` int64 [N, L] (+ ``attention_mask`` when
the spec uses one: CLIP, SigLIP exported with ``text_attention_mask``), ids identical to the checkpoint's HF
tokenizer for ordinary text.

CLIP (byte-level BPE): onnxruntime-extensions' ``HfJsonTokenizer`` op loaded with the folder's ``tokenizer.json``
(it runs the CLIP pre-tokenizer regex from that file). Measured against ``tokenizers`` on a random multilingual
corpus, the older ``CLIPTokenizer`` op (vocab + merges attributes) differs: it pre-tokenizes with GPT-2's regex
(digit runs stay one word), keeps tabs, deletes newlines and crashes the process on a literal
``<|endoftext|>``. Around the op the graph adds what it lacks:
  - every Unicode whitespace run becomes one space (HF's ``Replace(\\s+, " ")``; the op drops ``\\n`` and keeps tabs);
  - a sentinel word is appended and its tokens removed afterwards, because the op loses the last characters of
    a text that ends one or two characters after a ``<`` (its special-token matcher runs off the end);
  - truncation as HF's ``truncation=True`` (first ``L - 1`` tokens, then EOS) and padding with the spec's pad id,
    to the longest text (capped at the context length) or always to the context length.
  Not reproduced: NFC composition (decomposed accents tokenize differently) and the C0 separators U+001C-U+001F,
  which the op treats as spaces.

open_clip (``TextSpec.kind == "openclip"``): the same op and fixes, given a CLIP-style tokenizer.json made from the
export's open_clip vocabulary, merges and special tokens (``openclip_tokenizer_json``), after the parts of
open_clip's ftfy cleaning that are plain replacements; whitespace as Python's ``str.split``; padded to 77 with 0.
What stays outside the graph is ``OPENCLIP_NOT_IN_GRAPH`` (docs/openclip.md).

SigLIP (SentencePiece): ``SiglipTokenizer`` step for step with string ops and ``SentencepieceTokenizer`` (the
sentencepiece library itself, with the model proto as HF loaded it): ``"▁" + text``, lower-case (``StringLower``),
ASCII punctuation removed, whitespace runs collapsed, trailing space stripped, then ``"<unk>" + text`` encoded and
the ``<unk>`` tokens dropped (HF's trick to keep the leading ``▁``), cut to ``L - 1`` tokens, EOS appended, padded
with the pad id to ``L``. Not reproduced: Python's special lower-casing (``İ`` -> ``i̇``, final sigma) and HF's
split on special tokens written in the text (``</s>`` loses its punctuation here).

Any HF fast tokenizer (``TextSpec.kind == "tokenizers"``): a SentencePiece-style BPE whose post-processor only
appends EOS (SigLIP 2's Gemma tokenizer, byte fallback included) runs in ``HfJsonTokenizer`` with the folder's
tokenizer.json. The op does not apply the post-processor, so the EOS token is written after the text (the op
splits it out as the added token it is, as ``tokenizers`` would apply the template); that also keeps a text from
ending right after a ``<``, where the op loses characters. Then HF's truncation and padding (``fit_length``).
Not reproduced: NUL characters (the text ends there). Exports that lower-case texts first (``lowercase_texts``,
SigLIP 2's default) are refused: ``StringLower`` leaves Greek, full-width and title-case letters as they are (123
of 271 test texts differed); export with ``keep_case`` for a pipeline. Other ``tokenizer.json`` models are refused
in one line (``TOKENIZERS_NOT_IN_GRAPH``): onnxruntime-extensions 0.15 does not run them as ``tokenizers`` does
(for Unigram, ``SentencepieceTokenizer`` with a model proto rebuilt from the tokenizer.json was measured too: 72 of
559 texts got other ids, at trailing spaces, whitespace-only texts and combining marks).

An empty tensor (no texts) fails in a node named ``text_tensor_is_empty__pass_at_least_one_string``.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import numpy as np

from clipforge.errors import InputError, UnsupportedModelError
from clipforge.pipeline._graph import CONTRIB, INT64, STRING, GraphBuilder
from clipforge.runtime.text import OPENCLIP_SPLIT
from clipforge.specs import TextSpec

TEXT_INPUT = "text"
EMPTY_NODE = "text_tensor_is_empty__pass_at_least_one_string"
SENTINEL = "a"  # appended as " a": one word after a space, a fixed number of tokens in any CLIP vocabulary
# Unicode White_Space: what HF's tokenizers treat as \s (CLIP's normaliser)
HF_SPACE = r"[\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+"
# Python's \s for str patterns (SigLIP's canonicalisation): the same plus the separators U+001C-U+001F
PY_SPACE = HF_SPACE[:-2] + r"\x{1C}-\x{1F}]+"
PUNCTUATION = "[" + "".join("\\" + c for c in string.punctuation) + "]"
SPIECE_SPACE = "\u2581"
# what open_clip's cleaning does that the graph does not (also in the text graph's metadata and docs/openclip.md)
OPENCLIP_NOT_IN_GRAPH = (
    "ftfy's mojibake repair and its NFC composition (decomposed accents such as e + U+0301, "
    "half-width sound marks as in \uff76\uff9e), HTML entities (&amp; stays 4 characters), and "
    "NUL characters (the text ends there) are not reproduced"
)
HALF_WIDTH_SOUND_MARKS = (0xFF9E, 0xFF9F)  # ftfy widens them to combining marks, which only NFC joins to the kana
INT64_MAX = np.iinfo(np.int64).max
# why a tokenizer.json model has no in-graph tokenizer (measured with onnxruntime-extensions 0.15.2 against
# ``tokenizers`` on export.samples' tricky texts and random texts: tests/test_pipeline_tokenizers.py)
TOKENIZERS_NOT_IN_GRAPH = {
    "Unigram": "onnxruntime-extensions 0.15's HfJsonTokenizer runs a Unigram tokenizer.json one text at a time, "
    "leaves out its <s>/</s> and treats whitespace runs, trailing spaces and literal special tokens differently "
    "from tokenizers",
    "WordPiece": "onnxruntime-extensions 0.15's HfJsonTokenizer refuses WordPiece (BertTokenizer) files",
}


def text_model(folder: str | Path, spec: TextSpec, prefix: str = "tok/"):
    """The tokenizer graph alone for the tokenizer files in ``folder``: ``text`` -> ``input_ids`` (+
    ``attention_mask``), both int64 [N, L]."""
    from onnx import helper

    g = GraphBuilder(prefix)
    text = non_empty(g, TEXT_INPUT)
    if spec.kind == "tokenizers":
        ids, mask = _tokenizer_json(g, text, Path(folder), spec)
    elif spec.kind == "sentencepiece":
        ids, mask = _sentencepiece(g, text, Path(folder), spec)
    elif spec.kind == "openclip":
        ids, mask = _openclip(g, text, Path(folder), spec)
    else:
        ids, mask = _bpe(g, text, Path(folder), spec)
    outputs = [("input_ids", ids)] + ([("attention_mask", mask)] if spec.uses_attention_mask else [])
    for name, value in outputs:
        g.nodes.append(helper.make_node("Identity", [value], [name], name=f"{prefix}{name}"))
    source = helper.make_tensor_value_info(TEXT_INPUT, STRING, ["batch_size"])
    outs = [helper.make_tensor_value_info(n, INT64, ["batch_size", "sequence_length"]) for n, _ in outputs]
    return g.model([source], outs, doc="clipforge tokenizer")


def non_empty(g: GraphBuilder, text: str) -> str:
    """``text`` unchanged, through a Gather of element 0 that fails (with a telling node name) when it is empty."""
    first = g.op("Gather", [text, g.const([0], np.int64)], axis=0, name=EMPTY_NODE)
    both = g.op("Concat", [first, text], axis=0)
    return g.op("Slice", [both, g.const([1], np.int64), g.const([INT64_MAX], np.int64)])


def _replace(g: GraphBuilder, text: str, pattern: str, rewrite: str) -> str:
    return g.op("StringRegexReplace", [text, g.const([pattern]), g.const([rewrite])], domain=CONTRIB)


def _concat(g: GraphBuilder, left: str, right: str, like: str) -> str:
    """Element-wise string concatenation; the op does not broadcast, so both sides are expanded like ``like``."""
    shape = g.op("Shape", [like])
    left, right = (g.op("Expand", [v, shape]) for v in (left, right))
    return g.op("StringConcat", [left, right], domain=CONTRIB)


# --- any HF fast tokenizer: a SentencePiece-style BPE with "$A <eos>" ----------------------------------------------
def _tokenizer_json(g: GraphBuilder, text: str, folder: Path, spec: TextSpec) -> tuple[str, str]:
    vocab_json, config_json, eos = _fast_files(folder, spec)
    text = _concat(g, text, g.const([eos]), text)
    ids, mask = g.op(
        "HfJsonTokenizer", [text], 2, domain=CONTRIB, tokenizer_vocab=vocab_json, tokenizer_config=config_json
    )
    return fit_length(g, ids, g.op("ReduceSum", [mask, g.const([1], np.int64)], keepdims=1), spec)


def _fast_files(folder: Path, spec: TextSpec) -> tuple[str, str, str]:
    """(tokenizer.json, tokenizer_config.json with no BOS/EOS added by the op, the EOS token's text), or a one-line
    refusal naming what the in-graph tokenizer cannot reproduce."""
    vocab, config = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not vocab.is_file() or not config.is_file():
        raise InputError(f"{folder} lacks tokenizer.json or tokenizer_config.json; re-export the model")
    data = json.loads(vocab.read_text(encoding="utf-8"))
    model = (data.get("model") or {}).get("type")
    why = TOKENIZERS_NOT_IN_GRAPH.get(model) or _bpe_refusal(data, spec)
    if why:
        raise UnsupportedModelError(
            f"not supported: an in-graph tokenizer for this {model} tokenizer.json ({why}); use the exported folder "
            "with ZeroShotModel, or 'clipforge export-classifier --with-preprocessing' (labels embedded at export)"
        )
    eos = next(t for t in data["added_tokens"] if t["id"] == spec.eos_id)["content"]
    settings = json.loads(config.read_text(encoding="utf-8"))
    settings.update(add_bos_token=False, add_eos_token=False)
    return json.dumps(data), json.dumps(settings), eos


def _bpe_refusal(data: dict, spec: TextSpec) -> str | None:
    """Why a BPE tokenizer.json cannot run in the graph, or None: its template must be "$A <eos>" with an EOS
    added token that strips nothing, and padding and truncation on the right."""
    template = (data.get("post_processor") or {}).get("single") or []
    parts = [next(iter(p)) for p in template]
    eos = next((t for t in data.get("added_tokens", []) if t["id"] == spec.eos_id), None)
    appended = template[-1].get("SpecialToken", {}).get("id") if template else None
    if data.get("model", {}).get("type") != "BPE":
        return "onnxruntime-extensions 0.15's HfJsonTokenizer was not measured on this model type"
    if (
        parts != ["Sequence", "SpecialToken"]
        or eos is None
        or appended != eos["content"]
        or eos["lstrip"]
        or eos["rstrip"]
    ):
        return "only a post-processor that appends EOS alone (SigLIP 2's '$A <eos>') was measured"
    if spec.lowercase_texts:
        return (
            "onnxruntime-extensions 0.15's StringLower leaves Greek, full-width and title-case letters as they are, "
            "unlike str.lower; export with --keep-case for an in-graph tokenizer"
        )
    if spec.padding_side != "right" or spec.truncation_side != "right":
        return "the graph pads and truncates on the right only"
    return None


# --- CLIP: byte-level BPE -------------------------------------------------------------------------------
def _bpe(
    g: GraphBuilder,
    text: str,
    folder: Path,
    spec: TextSpec,
    vocab_json: str | None = None,
    config_json: str | None = None,
    space: str = HF_SPACE,
) -> tuple[str, str]:
    if vocab_json is None:
        vocab_json, config_json = _bpe_files(folder)
    sentinel = _sentinel_length(vocab_json)
    text = _concat(g, _replace(g, text, space, " "), g.const([" " + SENTINEL]), text)
    ids, mask = g.op(
        "HfJsonTokenizer", [text], 2, domain=CONTRIB, tokenizer_vocab=vocab_json, tokenizer_config=config_json
    )
    length = g.op("Sub", [g.op("ReduceSum", [mask, g.const([1], np.int64)], keepdims=1), g.const(sentinel, np.int64)])
    return fit_length(g, ids, length, spec)


# --- open_clip: SimpleTokenizer's cleaning (the parts a regex can do) and CLIP's split, then the same BPE -------
def _openclip(g: GraphBuilder, text: str, folder: Path, spec: TextSpec) -> tuple[str, str]:
    """``runtime.text._OpenClipIds`` in the graph: ftfy's character-level fixes that are plain replacements
    (control characters removed, Latin ligatures expanded, full-/half-width forms folded, curly quotes
    straightened, from ftfy's own tables),
    whitespace runs (Python's ``str.split``) to one space, then the BPE op with open_clip's vocabulary and merges
    in a CLIP-style tokenizer.json (lower-case, open_clip's split regex, ``</w>`` word ends; the op does not
    compose to NFC although the file asks for it, as for CLIP)."""
    for pattern, rewrite in _ftfy_replacements():
        text = _replace(g, text, pattern, rewrite)
    vocab_json, config_json = openclip_tokenizer_json(folder, spec)
    return _bpe(g, text, folder, spec, vocab_json, config_json, space=PY_SPACE)


def _ftfy_replacements() -> list[tuple[str, str]]:
    """(RE2 pattern, rewrite) for ftfy's ``remove_control_chars``, ``fix_latin_ligatures``,
    ``fix_character_width`` and ``uncurl_quotes``, one character each. NUL cannot be matched (the op's strings end
    there); the half-width sound marks U+FF9E/U+FF9F are left (ftfy's NFC then joins them to the kana before,
    which the op does not do)."""
    from ftfy.chardata import CONTROL_CHARS, LIGATURES, WIDTH_MAP

    control = "".join(f"\\x{{{c:X}}}" for c in sorted(CONTROL_CHARS) if c)
    rules = [(f"[{control}]", "")]
    single = {**LIGATURES, **{c: t for c, t in WIDTH_MAP.items() if c not in HALF_WIDTH_SOUND_MARKS}}
    rules += [(f"\\x{{{c:X}}}", text) for c, text in sorted(single.items())]
    return rules + [(r"[\x{2BC}\x{2018}-\x{201B}]", "'"), (r"[\x{201C}-\x{201F}]", '"')]


def openclip_tokenizer_json(folder: Path, spec: TextSpec) -> tuple[str, str]:
    """(tokenizer.json, tokenizer_config.json) texts for the BPE op: the export's open_clip vocabulary, merges and
    special tokens with CLIP's normaliser, open_clip's split regex (its special tokens first) and post-processor."""

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{folder} has no tokenizer.json; re-export the model with 'clipforge export'")
    data = json.loads(path.read_text(encoding="utf-8"))
    special = {t["id"]: t["content"] for t in data["added_tokens"] if t.get("special")}
    starts = [i for i in special if i != spec.eos_id]
    if spec.eos_id not in special or len(starts) != 1:
        raise InputError(f"{path} must hold exactly open_clip's start and end tokens; re-export the model")
    bos, eos = special[starts[0]], special[spec.eos_id]
    split = "|".join(re.escape(t) for t in (bos, eos)) + "|" + OPENCLIP_SPLIT
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"},
        ],
    }
    data["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    }
    data["post_processor"] = {
        "type": "RobertaProcessing",
        "sep": [eos, spec.eos_id],
        "cls": [bos, starts[0]],
        "trim_offsets": False,
        "add_prefix_space": False,
    }
    data["model"]["unk_token"] = eos
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": eos,
        "unk_token": eos,
        "model_max_length": spec.context_length,
    }
    return json.dumps(data), json.dumps(config)


def _bpe_files(folder: Path) -> tuple[str, str]:
    vocab, config = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not vocab.is_file() or not config.is_file():
        raise InputError(f"{folder} lacks tokenizer.json or tokenizer_config.json; re-export the model")
    vocab_json = vocab.read_text(encoding="utf-8")
    model = json.loads(vocab_json).get("model", {})
    if model.get("type") != "BPE":
        raise InputError(f"{vocab} holds a {model.get('type')} model; the in-graph CLIP tokenizer needs BPE")
    return vocab_json, config.read_text(encoding="utf-8")


def _sentinel_length(vocab_json: str) -> int:
    from tokenizers import Tokenizer

    return len(Tokenizer.from_str(vocab_json).encode(SENTINEL, add_special_tokens=False).ids)


def fit_length(g: GraphBuilder, ids: str, length: str, spec: TextSpec) -> tuple[str, str]:
    """Rows of ``ids`` [N, W] whose first ``length`` [N, 1] tokens end in EOS -> HF's truncation (first L - 1
    tokens + EOS) and padding (pad id; to the longest row capped at L, or to L), plus the attention mask."""
    limit = spec.context_length
    kept = g.op("Min", [length, g.const(limit, np.int64)])
    fixed = spec.padding == "max_length"
    width = g.const(limit, np.int64) if fixed else g.op("ReduceMax", [kept], keepdims=0)
    wide = g.op("Pad", [ids, g.const([0, 0, 0, limit], np.int64), g.const(spec.pad_id, np.int64)])
    cut = g.op(
        "Slice",
        [wide, g.const([0], np.int64), g.op("Unsqueeze", [width, g.const([0], np.int64)]), g.const([1], np.int64)],
    )
    columns = g.op("Range", [g.const(0, np.int64), width, g.const(1, np.int64)])
    eos_at = g.op("Sub", [kept, g.const(1, np.int64)])
    body = g.op("Where", [g.op("Less", [columns, eos_at]), cut, g.const(spec.pad_id, np.int64)])
    ids_out = g.op("Where", [g.op("Equal", [columns, eos_at]), g.const(spec.eos_id, np.int64), body])
    mask = g.op("Cast", [g.op("Less", [columns, kept])], to=INT64)
    return ids_out, mask


# --- SigLIP: SentencePiece ------------------------------------------------------------------------------
def _sentencepiece(g: GraphBuilder, text: str, folder: Path, spec: TextSpec) -> tuple[str, str]:
    proto, unk, unk_length = _sentencepiece_model(folder)
    text = _concat(g, g.const([SPIECE_SPACE]), _replace(g, text, SPIECE_SPACE, " "), text)
    if spec.lowercase:
        text = g.op("StringLower", [text], domain=CONTRIB)
    text = _replace(g, _replace(g, text, PUNCTUATION, ""), PY_SPACE, " ")
    text = _concat(g, g.const([unk]), _replace(g, text, " $", ""), text)
    flags = [g.const([v]) for v in (np.int64(0), np.float32(0), False, False, False, False)]
    tokens, splits, _ = g.op("SentencepieceTokenizer", [text, *flags], 3, domain=CONTRIB, model=proto)
    return _ragged_to_dense(g, g.op("Cast", [tokens], to=INT64), splits, unk_length, spec)


def _sentencepiece_model(folder: Path) -> tuple[bytes, str, int]:
    """The model proto as HF's tokenizer loaded (and edited) it, the unknown token and its token count."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the SentencePiece tokenizer in {folder}: {str(exc).splitlines()[0]}") from exc
    if getattr(tokenizer, "sp_model", None) is None:
        raise InputError(f"the tokenizer in {folder} ({type(tokenizer).__name__}) is not SentencePiece-based")
    return (
        tokenizer.sp_model.serialized_model_proto(),
        str(tokenizer.unk_token),
        len(tokenizer.sp_model.encode(str(tokenizer.unk_token))),
    )


def _ragged_to_dense(g: GraphBuilder, tokens: str, splits: str, skip: int, spec: TextSpec) -> tuple[str, str]:
    """Flat ``tokens`` [T] with row ``splits`` [N + 1] -> ids [N, L]: drop each row's first ``skip`` tokens,
    keep at most L - 1, append EOS, pad with the pad id."""
    limit = spec.context_length
    starts = g.op("Slice", [splits, g.const([0], np.int64), g.const([-1], np.int64)])
    ends = g.op("Slice", [splits, g.const([1], np.int64), g.const([INT64_MAX], np.int64)])
    total = g.op("Shape", [tokens])
    rows = _row_of_each_token(g, splits, total)
    position = g.op(
        "Sub",
        [
            g.op("Range", [g.const(0, np.int64), g.op("Squeeze", [total]), g.const(1, np.int64)]),
            g.op("Gather", [starts, rows], axis=0),
        ],
    )
    column = g.op("Sub", [position, g.const(skip, np.int64)])
    keep = g.op(
        "And",
        [g.op("GreaterOrEqual", [column, g.const(0, np.int64)]), g.op("Less", [column, g.const(limit - 1, np.int64)])],
    )
    index = g.op("Concat", [g.op("Unsqueeze", [v, g.const([1], np.int64)]) for v in (rows, column)], axis=1)
    shape = g.op("Concat", [g.op("Shape", [starts]), g.const([limit], np.int64)], axis=0)
    blank = g.op("Expand", [g.const(spec.pad_id, np.int64), shape])
    dense = g.op(
        "ScatterND", [blank, g.op("Compress", [index, keep], axis=0), g.op("Compress", [tokens, keep], axis=0)]
    )
    content = g.op(
        "Clip",
        [
            g.op("Sub", [g.op("Sub", [ends, starts]), g.const(skip, np.int64)]),
            g.const(0, np.int64),
            g.const(limit - 1, np.int64),
        ],
    )
    length = g.op("Add", [g.op("Unsqueeze", [content, g.const([1], np.int64)]), g.const(1, np.int64)])
    columns = g.op("Range", [g.const(0, np.int64), g.const(limit, np.int64), g.const(1, np.int64)])
    eos_here = g.op("Equal", [columns, g.op("Sub", [length, g.const(1, np.int64)])])
    ids = g.op("Where", [eos_here, g.const(spec.eos_id, np.int64), dense])
    return ids, g.op("Cast", [g.op("Less", [columns, length])], to=INT64)


def _row_of_each_token(g: GraphBuilder, splits: str, total: str) -> str:
    """[T] row index of every flat token: a cumulative count of the row boundaries (empty rows included)."""
    from onnx import numpy_helper

    inner = g.op("Slice", [splits, g.const([1], np.int64), g.const([-1], np.int64)])
    marks = g.op(
        "ConstantOfShape",
        [g.op("Add", [total, g.const([1], np.int64)])],
        value=numpy_helper.from_array(np.array([0], np.int64)),
    )
    ones = g.op("Expand", [g.const(1, np.int64), g.op("Shape", [inner])])
    counted = g.op("ScatterElements", [marks, inner, ones], axis=0, reduction="add")
    rows = g.op("CumSum", [counted, g.const(0, np.int64)])
    return g.op("Slice", [rows, g.const([0], np.int64), total])
