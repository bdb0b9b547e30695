"""A loaded checkpoint: family, PyTorch model, HF tokenizer and image processor, and the specs read from them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipforge._torchvision import ensure_torchvision
from clipforge.errors import InputError, require
from clipforge.families.base import Family
from clipforge.families.openclip_io import load_openclip
from clipforge.hub import OpenClipSource, is_openclip_only, openclip_source, resolve_checkpoint
from clipforge.progress import quiet_transformers
from clipforge.registry import family_for_checkpoint, get_family
from clipforge.specs import ImageSpec, TextSpec


@dataclass
class Checkpoint:
    source: str
    revision: str | None
    folder: Path
    family: Family
    model: Any
    tokenizer: Any
    processor: Any
    image: ImageSpec
    text: TextSpec

    @property
    def embed_dim(self) -> int:
        return self.family.embed_dim(self.model)


def load_checkpoint(model: str | Path, revision: str | None = None) -> Checkpoint:
    require("torch", "export")
    source = openclip_source(model, revision)
    if source is not None:
        return _load_openclip(model, source, revision)

    ensure_torchvision()  # transformers imports torchvision once it is installed
    require("transformers", "export")
    folder, revision = resolve_checkpoint(model, revision)
    if is_openclip_only(folder):  # a plain hub id of open_clip files (timm's repos of OpenAI's weights)
        return _load_openclip(model, OpenClipSource(folder), revision)
    family = family_for_checkpoint(folder)
    try:
        with quiet_transformers():  # the files are local by now; clipforge shows its own progress
            torch_model = family.load_model(folder)
        tokenizer = family.load_tokenizer(folder)
        processor = family.load_image_processor(folder)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load checkpoint {model}: {str(exc).splitlines()[0]}") from exc
    return Checkpoint(
        source=str(model),
        revision=revision,
        folder=folder,
        family=family,
        model=torch_model,
        tokenizer=tokenizer,
        processor=processor,
        image=family.image_spec(folder),
        text=family.text_spec(torch_model, tokenizer),
    )


def _load_openclip(model, source: OpenClipSource, revision: str | None) -> Checkpoint:

    family = get_family("openclip")
    loaded = load_openclip(source)
    return Checkpoint(
        source=str(model),
        revision=revision,
        folder=source.path,
        family=family,
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        processor=loaded.processor,
        image=loaded.image,
        text=family.text_spec(loaded.model, loaded.tokenizer),
    )


def with_text_mask(ckpt: Checkpoint) -> Checkpoint:
    """The checkpoint exported with a text graph that takes and applies ``attention_mask`` (SigLIP as transformers
    5 runs it; ``ExportOptions.text_attention_mask``); an error for families without that variant."""
    family = ckpt.family.with_text_mask()
    return replace(ckpt, family=family, text=family.text_spec(ckpt.model, ckpt.tokenizer))


def with_kept_case(ckpt: Checkpoint) -> Checkpoint:
    """The checkpoint exported without the lower-casing its family adds for it (SigLIP 2: ``keep_case``); an
    error where clipforge adds none (the tokenizer itself decides, or the family is not SigLIP 2)."""
    if not ckpt.text.lowercase_texts:
        raise InputError(
            f"keep_case=True applies to SigLIP 2 checkpoints (texts lower-cased before a tokenizer that keeps case); "
            f"{ckpt.source}'s texts are tokenized as its tokenizer does: export it without the option"
        )
    return replace(ckpt, text=replace(ckpt.text, lowercase_texts=False, lowercase=False))


def with_image_size(spec: ImageSpec, size: int | None) -> ImageSpec:
    """The pre-processing for a model exported at another square resolution (position embeddings interpolated)."""
    if not size or spec.output_size == (size, size):
        return spec
    crop = (size, size) if spec.crop_size else None
    return replace(spec, size=(size, size), crop_size=crop)
