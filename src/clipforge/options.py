"""What a caller may ask for when getting a model: export options (one validated type, also the ``export``
section of a build config) and the build options ``build_composite``/``from_pretrained`` accept. Data and
validation only; torch-free."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from clipforge.errors import InputError


@dataclass
class ExportOptions:
    """Shapes, opset and validation tolerances of an export (``clipforge export`` flags, a build config's
    ``export`` section)."""

    opset: int = 17
    static: bool = False  # fixed shapes: batch ``batch_size``, text ``sequence_length`` (family default)
    batch_size: int = 1
    sequence_length: int | None = None
    image_size: int | None = None  # square size other than the checkpoint's (position embeddings interpolated)
    validate: bool = True  # compare every encoder with PyTorch after export
    atol: float = 1e-4  # validation: max abs diff ...
    min_cosine: float = 0.9999  # ... and min cosine per row
    # SigLIP: give the text graph an ``attention_mask`` input applied as transformers 5's ``SiglipTextModel``
    # applies it (padding keys masked). Off: the trained semantics (no mask; padding attended), as open_clip,
    # big_vision and transformers 4 run SigLIP. CLIP's text graph always takes its mask.
    text_attention_mask: bool = False
    # SigLIP 2: keep the case of texts (HF pipeline parity on mixed-case labels). Off: texts are lower-cased before
    # the tokenizer, as SigLIP 2 was trained (``text.lowercase_texts`` in the manifest)
    keep_case: bool = False
    # SigLIP 2 NaFlex: the patch budget recorded in the manifest (default: the processor's max_num_patches); loads
    # and requests may still use another
    max_patches: int | None = None

    def __post_init__(self):
        self.check()

    def check(self) -> ExportOptions:
        if not 14 <= self.opset <= 21:
            raise InputError(f"export.opset = {self.opset} is not valid; use 14 to 21 (default 17)")
        for name in ("batch_size", "sequence_length", "image_size", "max_patches"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"export.{name} = {value!r} must be a whole number of at least 1")
        for name in ("text_attention_mask", "keep_case"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"export.{name} = {getattr(self, name)!r} must be true or false")
        if self.atol <= 0:
            raise InputError(f"export.atol = {self.atol} must be > 0")
        return self


EXPORT_KEYS = tuple(f.name for f in dataclasses.fields(ExportOptions))

# Build options given as keywords (``build_composite(**overrides)``, ``from_pretrained(quantize=...)``):
# keyword -> (config section, key).
BUILD_OVERRIDES = {
    "quantize": ("quantize", "mode"),
    "max_accuracy_drop": ("quantize", "max_accuracy_drop"),
    "calibration_samples": ("quantize", "calibration_samples"),
    "ep": ("compile", "ep"),
    "static": ("export", "static"),
    "batch_size": ("export", "batch_size"),
    "sequence_length": ("export", "sequence_length"),
    "image_size": ("export", "image_size"),
    "opset": ("export", "opset"),
    "text_attention_mask": ("export", "text_attention_mask"),
    "keep_case": ("export", "keep_case"),
}
# Keywords that need the build pipeline (anything beyond a plain export).
BUILD_ONLY_KEYS = ("quantize", "max_accuracy_drop", "calibration_samples", "ep", "calibration_data")
MODEL_OPTION_KEYS = tuple(dict.fromkeys([*EXPORT_KEYS, *BUILD_OVERRIDES, "calibration_data"]))


def check_model_options(options: dict) -> dict:
    """Options for getting a model from a checkpoint; unknown keys are an error that lists the valid ones."""
    unknown = sorted(set(options) - set(MODEL_OPTION_KEYS))
    if unknown:
        raise InputError(f"unknown export/build option(s) {unknown}; valid: {', '.join(MODEL_OPTION_KEYS)}")
    return {k: v for k, v in options.items() if v is not None}


def needs_build(options: dict) -> bool:
    return any(k in BUILD_ONLY_KEYS for k in options)
