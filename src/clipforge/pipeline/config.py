"""Pipeline configuration: presets for well-known checkpoints and templates (``templates.json``, data only) for the
rest, as OML4Py's ``ONNXPipelineConfig.from_template``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from clipforge.errors import InputError

IMAGE_INPUTS = ("bytes", "pixels")
PADDINGS = ("longest", "max_length")


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads((Path(__file__).with_name("templates.json")).read_text(encoding="utf-8"))


def list_templates() -> list[str]:
    return sorted(_data()["templates"])


def list_presets() -> dict[str, str]:
    """Checkpoint name -> template name."""
    return {name: entry["template"] for name, entry in _data()["presets"].items()}


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline graphs do around the encoders."""

    template: str
    family: str
    description: str = ""
    text_padding: str = "longest"  # "longest": to the longest text of the call (capped); "max_length": always
    image_inputs: tuple[str, ...] = IMAGE_INPUTS  # "bytes" -> PREFIX_img.onnx, "pixels" -> PREFIX_img_hwc.onnx
    normalize: bool = True  # L2-normalise the embeddings

    def __post_init__(self):
        if self.text_padding not in PADDINGS:
            raise InputError(f"template {self.template}: text_padding {self.text_padding!r} is not one of {PADDINGS}")
        bad = [i for i in self.image_inputs if i not in IMAGE_INPUTS]
        if bad or not self.image_inputs:
            raise InputError(f"template {self.template}: image_inputs {list(self.image_inputs)} must be a "
                             f"non-empty subset of {list(IMAGE_INPUTS)}")

    @classmethod
    def from_template(cls, name: str, **overrides) -> "PipelineConfig":
        templates = _data()["templates"]
        if name not in templates:
            raise InputError(f"unknown pipeline template {name!r}; use one of: {', '.join(list_templates())}")
        values = dict(templates[name], **overrides)
        values["image_inputs"] = tuple(values.get("image_inputs", IMAGE_INPUTS))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"template {name}: unknown field(s) {unknown}; known: {sorted(known - {'template'})}")
        return cls(template=name, **values)

    @classmethod
    def for_model(cls, source: str, family: str | None, template: str | None = None) -> "PipelineConfig":
        """The preset of ``source`` (a hub id), or ``template`` for checkpoints without one; the template must
        fit the checkpoint's ``family`` (None: not known yet, checked later with ``check_family``)."""
        preset = _data()["presets"].get(source)
        if template is None and preset is None:
            fitting = " or ".join(_fitting(family) if family else list_templates())
            raise InputError(f"{source} has no pipeline preset; pass --template {fitting or '(none fits)'}")
        if template is None:
            overrides = {k: v for k, v in preset.items() if k != "template"}
            config = cls.from_template(preset["template"], **overrides)
        else:
            config = cls.from_template(template)
        if family is not None:
            config.check_family(source, family)
        return config

    def check_family(self, source: str, family: str) -> None:
        if self.family != family:
            raise InputError(f"template {self.template} is for {self.family} checkpoints but {source} is {family}; "
                             f"use one of: {', '.join(_fitting(family)) or 'none (unsupported family)'}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def _fitting(family: str) -> list[str]:
    return [t for t in list_templates() if _data()["templates"][t]["family"] == family]
