"""Pipeline configuration: one preset per model family (``presets.json``, data only). A checkpoint whose family is
known (an exported folder's manifest, a local checkpoint's config.json, or a well-known hub id listed in
``families/known.py``) gets its family's preset; ``--preset`` overrides it. ("Template" in clipforge always
means a prompt pattern such as "a photo of a {}.".)"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from clipforge.errors import InputError
from clipforge.registry import list_models

IMAGE_INPUTS = ("bytes", "pixels")
PADDINGS = ("longest", "max_length")


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads((Path(__file__).with_name("presets.json")).read_text(encoding="utf-8"))


def list_presets() -> dict[str, str]:
    """Preset name -> the family it is for."""
    return {name: entry["family"] for name, entry in sorted(_data().items())}


def preset_for_family(family: str) -> str | None:
    return next((name for name, fam in list_presets().items() if fam == family), None)


def known_family(source: str) -> str | None:
    """The family of a well-known hub id (``clipforge models``), or None."""

    return next((row["family"] for row in list_models() if row["name"] == source), None)


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline graphs do around the encoders."""

    preset: str
    family: str
    description: str = ""
    text_padding: str = "longest"  # "longest": to the longest text of the call (capped); "max_length": always
    image_inputs: tuple[str, ...] = IMAGE_INPUTS  # "bytes" -> PREFIX_img.onnx, "pixels" -> PREFIX_img_hwc.onnx
    normalize: bool = True  # L2-normalise the embeddings

    def __post_init__(self):
        if self.text_padding not in PADDINGS:
            raise InputError(f"preset {self.preset}: text_padding {self.text_padding!r} is not one of {PADDINGS}")
        bad = [i for i in self.image_inputs if i not in IMAGE_INPUTS]
        if bad or not self.image_inputs:
            raise InputError(
                f"preset {self.preset}: image_inputs {list(self.image_inputs)} must be a "
                f"non-empty subset of {list(IMAGE_INPUTS)}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PipelineConfig:
        if name not in _data():
            raise InputError(f"unknown pipeline preset {name!r}; use one of: {', '.join(list_presets())}")
        values = dict(_data()[name], **overrides)
        values["image_inputs"] = tuple(values.get("image_inputs", IMAGE_INPUTS))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"preset {name}: unknown field(s) {unknown}; known: {sorted(known - {'preset'})}")
        return cls(preset=name, **values)

    @classmethod
    def for_model(cls, source: str, family: str | None, preset: str | None = None) -> PipelineConfig | None:
        """``preset`` if given (it must fit ``family`` when that is known), else the preset of ``family``; None
        when neither is known yet (a hub id outside the known list: decided from its export's manifest)."""
        if preset is not None:
            config = cls.from_preset(preset)
            if family is not None:
                config.check_family(source, family)
            return config
        if family is None:
            return None
        name = preset_for_family(family)
        if name is None:
            raise InputError(
                f"{source} is a {family} checkpoint and no pipeline preset is for {family}; pass "
                f"preset= ({', '.join(list_presets())}) if one fits"
            )
        return cls.from_preset(name)

    def check_family(self, source: str, family: str) -> None:
        if self.family != family:
            fitting = [name for name, fam in list_presets().items() if fam == family]
            raise InputError(
                f"preset {self.preset} is for {self.family} checkpoints but {source} is {family}; "
                f"use {', '.join(fitting) or 'none (no preset for this family)'}"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))
