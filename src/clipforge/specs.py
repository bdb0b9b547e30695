"""Data that describes a checkpoint: how its images are pre-processed, how its text is tokenized, what its graphs
take and return. These travel in ``manifest.json`` so inference needs nothing but the exported folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipforge.errors import InputError
from clipforge.hub import found_at

IMAGE_ROLE, TEXT_ROLE = "image-encoder", "text-encoder"
ROLES = (IMAGE_ROLE, TEXT_ROLE)
DYNAMIC_AXES = ("batch_size", "sequence_length", "num_patches")
# Fields older manifests carried that nothing reads (pooling happens inside the exported graph; no bos is added
# by clipforge's tokenizers beyond what tokenizer.json does): dropped on load.
DROPPED_TEXT_FIELDS = ("bos_id", "pooling", "strip_punctuation")
# How texts become ids (runtime/text.py): "tokenizers": the checkpoint's own tokenizer.json run as is by the
# ``tokenizers`` library (any HF fast tokenizer: BPE with or without byte fallback, WordPiece, Unigram, with its
# normaliser, pre-tokeniser and post-processor), truncated and padded as HF does; "bpe": the same for CLIP's
# byte-level BPE (the name manifests have always used); "sentencepiece": SigLIP's slow SentencePiece tokenizer
# (canonicalisation, HF's split on added tokens, SentencePiece's normaliser ported); "openclip": open_clip's text
# cleaning (ftfy, HTML unescape, whitespace, lower-case) then the same byte-level BPE
TOKENIZER_KINDS = ("tokenizers", "bpe", "sentencepiece", "openclip")
SIDES = ("right", "left")
# "hf": transformers' image processors (RGB first, alpha onto white; floor crop offsets; x * (1/255) in float64);
# "torchvision": open_clip's torchvision transform (resize in the image's own mode, crop offsets rounded half to
# even, then convert("RGB"); x / 255 in float32)
IMAGE_CONVENTIONS = ("hf", "torchvision")
# "naflex": SigLIP 2 NaFlex: aspect kept, resized to fit ``max_patches`` patches of ``patch_size``, patchified
RESIZE_MODES = ("shortest_edge", "exact", "none", "fit_shortest", "fit_longest", "naflex")
MANIFEST_SCHEMA_VERSION = 4
# open_clip's HFTokenizer cleaning modes (runtime/text_cleaning.py): "whitespace", "lower", "canonicalize"
CLEAN_MODES = ("whitespace", "lower", "canonicalize")


@dataclass(frozen=True)
class ImageSpec:
    """Image pre-processing, as the checkpoint's HF image processor does it."""

    # "shortest_edge": short side to size[0], long side truncated (HF, torchvision's Resize(int));
    # "exact": to height x width; "none"; "fit_shortest"/"fit_longest": scale so the short/long side fits
    # (height, width), sides rounded (open_clip's ResizeKeepRatio), then centre crop-or-pad to ``size``
    resize_mode: str
    size: tuple[int, int]  # (height, width); for shortest_edge both equal the target short side
    crop_size: tuple[int, int] | None  # centre crop after resize, or None
    resample: int  # PIL resampling code (3 = bicubic, 2 = bilinear)
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    do_convert_rgb: bool = True
    do_normalize: bool = True
    convention: str = "hf"  # one of IMAGE_CONVENTIONS
    fill: int = 0  # padding value of fit_longest (open_clip's fill_color)
    # NaFlex ("naflex"): square patch side, and the patch budget (the default; a load or request may change it)
    patch_size: int = 0
    max_patches: int = 0

    def __post_init__(self):
        if self.resize_mode == "naflex" and (self.patch_size < 1 or self.max_patches < 1):
            raise ValueError(f"image.patch_size {self.patch_size} and max_patches {self.max_patches} must be >= 1")
        if self.convention not in IMAGE_CONVENTIONS:
            raise ValueError(f"image.convention {self.convention!r} is not one of {', '.join(IMAGE_CONVENTIONS)}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"image.resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")

    @property
    def output_size(self) -> tuple[int, int]:
        return self.crop_size or self.size

    @property
    def naflex(self) -> bool:
        """Variable patch count per image (SigLIP 2 NaFlex): the image encoder takes patches, not pixels."""
        return self.resize_mode == "naflex"


@dataclass(frozen=True)
class TextSpec:
    """Tokenization and text-encoder conventions. Fields after ``kind`` came with schemas 3 and 4; older manifests load
    with their defaults (what every earlier export did)."""

    context_length: int
    padding: str  # "longest" (CLIP) or "max_length" (SigLIP: always pad to context_length)
    lowercase: bool  # texts reach the model lower-cased (by its tokenizer, or by the runtime: lowercase_texts)
    pad_id: int
    eos_id: int  # the id that ends a text (a BERT-style tokenizer's [SEP])
    uses_attention_mask: bool  # the text encoder takes ``attention_mask``
    kind: str = "bpe"  # one of TOKENIZER_KINDS: how texts become ids (see runtime/text.py)
    # the runtime lower-cases each text (``str.lower``) before the tokenizer: for checkpoints trained on
    # lower-cased text whose tokenizer keeps case (SigLIP 2; off with the export option keep_case)
    lowercase_texts: bool = False
    padding_side: str = "right"  # one of SIDES: where padding goes
    truncation_side: str = "right"  # one of SIDES: which end a long text loses
    special_tokens: dict[str, int] = field(default_factory=dict)  # "bos"/"eos"/"pad"/"unk"/"cls"/"sep" -> id
    # schema 4: open_clip's HFTokenizer. ``clean``: its cleaning before the tokenizer, one of CLEAN_MODES ("" for
    # none); ``strip_sep_token``: ids equal to special_tokens["sep"] become 0 (CLIPA)
    clean: str = ""
    strip_sep_token: bool = False

    def __post_init__(self):
        if self.clean and self.clean not in CLEAN_MODES:
            raise ValueError(f"text.clean {self.clean!r} is not one of {', '.join(CLEAN_MODES)}")
        for name in ("padding_side", "truncation_side"):
            if getattr(self, name) not in SIDES:
                raise ValueError(f"text.{name} {getattr(self, name)!r} is not one of {', '.join(SIDES)}")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    axes: tuple[str | int, ...]  # names in DYNAMIC_AXES are dynamic unless the export is static


@dataclass(frozen=True)
class EncoderIO:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclass
class Manifest:
    """What ``manifest.json`` holds for an exported or built folder."""

    family: str
    source: str
    revision: str | None
    embed_dim: int
    logit_scale: float
    logit_bias: float | None
    image: ImageSpec
    text: TextSpec
    opset: int
    static: bool = False
    encoders: dict[str, str] = field(default_factory=lambda: {r: f"{r}/model.onnx" for r in ROLES})
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    validation: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    # per encoder: {"arch": "transformer"|"resnet", "num_heads": int, "hidden_size": int}, from the family at export
    towers: dict[str, dict[str, Any]] = field(default_factory=dict)
    clipforge_version: str = ""
    schema_version: int = MANIFEST_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = _upgrade(dict(data))
        data["image"] = ImageSpec(**_tuples(data["image"]))
        data["text"] = TextSpec(**data["text"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        if not path.is_file():
            folder = path.parent if path.name == "manifest.json" else path
            raise InputError(
                f"no manifest.json in {folder}: found {found_at(folder)}; pass a folder "
                "written by 'clipforge export' or 'build' (export a checkpoint, hub id or open_clip source "
                "first)"
            )
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path} is not a valid clipforge manifest ({exc}); re-export the model") from exc


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Read manifests of older schema versions: v1 (no ``schema_version``) used ``text.strip_punctuation`` as
    the BPE/SentencePiece switch and had no ``towers``; ``text.bos_id`` and ``text.pooling`` were never read; v2
    had no ``text.lowercase_texts``, ``padding_side``, ``truncation_side`` or ``special_tokens`` (their defaults
    are what v2 exports did); v3 had no ``text.clean`` or ``strip_sep_token`` (none: open_clip's HF tokenizers
    were refused before schema 4)."""
    version = int(data.get("schema_version", 1))
    if version > MANIFEST_SCHEMA_VERSION:
        raise ValueError(
            f"schema_version {version} is newer than this clipforge reads "
            f"({MANIFEST_SCHEMA_VERSION}); upgrade clipforge"
        )
    if version == 1:
        text = dict(data["text"])
        text["kind"] = "sentencepiece" if text.pop("strip_punctuation", False) else "bpe"
        data["text"] = text
    data["schema_version"] = MANIFEST_SCHEMA_VERSION
    data["text"] = {k: v for k, v in data["text"].items() if k not in DROPPED_TEXT_FIELDS}
    if data["text"].get("kind") not in TOKENIZER_KINDS:
        raise ValueError(f"text.kind {data['text'].get('kind')!r} is not one of {', '.join(TOKENIZER_KINDS)}")
    return data


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
