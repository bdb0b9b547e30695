"""Data that describes a checkpoint: how its images are pre-processed, how its text is tokenized, what its graphs
take and return. These travel in ``manifest.json`` so inference needs nothing but the exported folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipforge.errors import InputError

IMAGE_ROLE, TEXT_ROLE = "image-encoder", "text-encoder"
ROLES = (IMAGE_ROLE, TEXT_ROLE)
DYNAMIC_AXES = ("batch_size", "sequence_length")


@dataclass(frozen=True)
class ImageSpec:
    """Image pre-processing, as the checkpoint's HF image processor does it."""

    resize_mode: str  # "shortest_edge" (resize short side, keep aspect) or "exact" (to height x width)
    size: tuple[int, int]  # (height, width); for shortest_edge both equal the target short side
    crop_size: tuple[int, int] | None  # centre crop after resize, or None
    resample: int  # PIL resampling code (3 = bicubic, 2 = bilinear)
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    do_convert_rgb: bool = True
    do_normalize: bool = True

    @property
    def output_size(self) -> tuple[int, int]:
        return self.crop_size or self.size


@dataclass(frozen=True)
class TextSpec:
    """Tokenization and text-tower conventions."""

    context_length: int
    padding: str  # "longest" (CLIP) or "max_length" (SigLIP: always pad to context_length)
    lowercase: bool
    pad_id: int
    eos_id: int
    bos_id: int | None
    pooling: str  # "eos" (first eos), "argmax" (highest id, old CLIP configs) or "last" (SigLIP)
    uses_attention_mask: bool
    strip_punctuation: bool = False  # SigLIP canonicalises text before SentencePiece


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
    clipforge_version: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        data = dict(data)
        data["image"] = ImageSpec(**_tuples(data["image"]))
        data["text"] = TextSpec(**data["text"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        if not path.is_file():
            raise InputError(f"no manifest.json at {path}; pass a folder written by 'clipforge export' or 'build'")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path} is not a valid clipforge manifest ({exc}); re-export the model") from exc


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
