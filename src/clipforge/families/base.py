"""What every model family provides. Torch and transformers are imported inside methods only: listing
families and reading manifests must stay cheap and torch-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipforge.errors import InputError
from clipforge.specs import EncoderIO, ImageSpec, TensorSpec, TextSpec

IMAGE_IO = EncoderIO(
    inputs=(TensorSpec("pixel_values", "float32", ("batch_size", 3, "height", "width")),),
    outputs=(TensorSpec("image_embeds", "float32", ("batch_size", "embed_dim")),),
)


def _as_dict(value: Any) -> Any:
    """HF processors hold sizes as plain dicts (v4) or ``SizeDict`` objects (v5)."""
    return value if isinstance(value, (dict, int, list, tuple)) else dict(value)


def _pair(value: Any) -> tuple[int, int]:
    value = _as_dict(value)
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return (value["shortest_edge"], value["shortest_edge"])
        return (value["height"], value["width"])
    if isinstance(value, int):
        return (value, value)
    return tuple(value)


def image_spec_from_processor(processor) -> ImageSpec:
    """Read the pre-processing a HF image processor performs into an ``ImageSpec``."""
    size = _as_dict(processor.size)
    mode = "shortest_edge" if isinstance(size, dict) and "shortest_edge" in size else "exact"
    crop = _pair(processor.crop_size) if getattr(processor, "do_center_crop", False) else None
    return ImageSpec(
        resize_mode=mode if getattr(processor, "do_resize", True) else "none",
        size=_pair(size),
        crop_size=crop,
        **pixel_steps(processor),
    )


def pixel_steps(processor) -> dict:
    """The ``ImageSpec`` fields every HF image processor shares after its resize: resampling, rescale,
    normalisation, RGB conversion."""
    return {
        "resample": int(processor.resample),
        "rescale_factor": float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0,
        "mean": tuple(float(m) for m in processor.image_mean),
        "std": tuple(float(s) for s in processor.image_std),
        "do_convert_rgb": bool(getattr(processor, "do_convert_rgb", True) in (True, None)),
        "do_normalize": bool(getattr(processor, "do_normalize", True)),
    }


SPECIAL_TOKEN_NAMES = ("bos", "eos", "pad", "unk", "cls", "sep", "mask")


def tokenizer_json_text_spec(
    tokenizer, *, context_length: int, padding: str, uses_attention_mask: bool, lowercase_texts: bool = False
) -> TextSpec:
    """The ``TextSpec`` of a HF fast tokenizer run from its own ``tokenizer.json`` (``kind = "tokenizers"``):
    padding and truncation sides, special tokens and pad/end ids read from the tokenizer; ``lowercase`` says
    whether texts reach the model lower-cased (by its normaliser, or by the runtime when ``lowercase_texts``)."""
    specials = {
        name: int(getattr(tokenizer, f"{name}_token_id"))
        for name in SPECIAL_TOKEN_NAMES
        if getattr(tokenizer, f"{name}_token_id", None) is not None
    }
    end = specials.get("eos", specials.get("sep"))
    if "pad" not in specials or end is None:
        raise InputError(
            f"{type(tokenizer).__name__} has no {'pad' if 'pad' not in specials else 'end (eos or sep)'} token; "
            "a text encoder fed padded batches needs one: set it in the checkpoint's tokenizer_config.json"
        )
    return TextSpec(
        context_length=int(context_length),
        padding=padding,
        lowercase=lowercase_texts or _normalizer_lowercases(tokenizer),
        pad_id=specials["pad"],
        eos_id=end,
        uses_attention_mask=uses_attention_mask,
        kind="tokenizers",
        lowercase_texts=lowercase_texts,
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        truncation_side=str(getattr(tokenizer, "truncation_side", "right")),
        special_tokens=specials,
    )


def _normalizer_lowercases(tokenizer) -> bool:
    """Whether the tokenizer.json's normaliser lower-cases (``Lowercase``, or ``BertNormalizer(lowercase)``)."""

    def lowers(node) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "Lowercase" or (node.get("type") == "BertNormalizer" and node.get("lowercase")):
                return True
            return any(lowers(v) for v in node.values())
        return isinstance(node, list) and any(lowers(v) for v in node)

    return lowers(json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer"))


def is_fast_tokenizer(tokenizer) -> bool:
    """A HF tokenizer backed by a ``tokenizers`` pipeline (it saves its own tokenizer.json)."""
    return getattr(tokenizer, "backend_tokenizer", None) is not None and getattr(tokenizer, "sp_model", None) is None


class Family:
    """A CLIP-family architecture: how to load it, wrap its encoders for export and describe its checkpoints."""

    name: str = ""
    model_types: tuple[str, ...] = ()
    checkpoints: list[dict] = []
    text_io: EncoderIO
    image_io: EncoderIO = IMAGE_IO
    # default static shapes for NPU-style builds
    static_sequence_length: int = 77

    def io(self, encoder: str) -> EncoderIO:
        return self.image_io if encoder == "image-encoder" else self.text_io

    # --- loading -------------------------------------------------------------------------------------
    def load_model(self, folder: str | Path):
        """Load the PyTorch model with eager attention (so ORT can fuse attention later)."""
        raise NotImplementedError

    def load_tokenizer(self, folder: str | Path):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder))

    def load_image_processor(self, folder: str | Path):
        """The PIL backend explicitly: with torchvision installed transformers picks its torchvision ("fast")
        processors, whose pixels differ slightly; runtime.images reproduces the PIL ones bit for bit."""
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(str(folder), backend="pil")

    # --- specs ---------------------------------------------------------------------------------------
    def image_spec(self, folder: str | Path) -> ImageSpec:
        return image_spec_from_processor(self.load_image_processor(folder))

    def text_spec(self, model, tokenizer) -> TextSpec:
        raise NotImplementedError

    def logit_params(self, model) -> tuple[float, float | None]:
        """(logit_scale, logit_bias) as used at inference: scale already exponentiated."""
        scale = float(model.logit_scale.detach().exp())
        bias = getattr(model, "logit_bias", None)
        return scale, (float(bias.detach().reshape(-1)[0]) if bias is not None else None)

    def embed_dim(self, model) -> int:
        raise NotImplementedError

    def encoder_info(self, model, encoder: str) -> dict:
        """What the build's fusion pass needs about an encoder, recorded in the manifest's ``towers``:
        ``{"arch": "transformer", "num_heads": int, "hidden_size": int}`` (or ``{"arch": "resnet"}``)."""
        config = model.config.vision_config if encoder == "image-encoder" else model.config.text_config
        return {
            "arch": "transformer",
            "num_heads": int(config.num_attention_heads),
            "hidden_size": int(config.hidden_size),
        }

    # --- export --------------------------------------------------------------------------------------
    def inference_form(self, model) -> tuple[Any, dict[str, dict]]:
        """(the model to export, ``{encoder: record}`` for the manifest's ``towers``): the inference-time form of
        a model whose encoders train with branches that fold away (re-parameterisation), a copy; ``model``
        itself and ``{}`` when nothing folds. The export validates the folded graphs against ``model``."""
        return model, {}

    def image_module(self, model, interpolate: bool = False):
        """A ``torch.nn.Module``: pixel_values -> image_embeds (projected, not normalised); ``interpolate``
        resamples the position embeddings for a non-native image size."""
        raise NotImplementedError

    def reference_image_module(self, model, interpolate: bool = False):
        """The image encoder export validates against: ``image_module`` itself unless the exported module
        re-computes part of the model in a traceable form (SigLIP 2 NaFlex's pooling head)."""
        return self.image_module(model, interpolate)

    def text_module(self, model):
        """A ``torch.nn.Module``: the text inputs of ``text_io`` -> text_embeds."""
        raise NotImplementedError

    def with_text_mask(self) -> Family:
        """This family with a text graph that takes ``attention_mask`` and applies it (the export option
        ``text_attention_mask``); families whose text encoder has no such variant refuse."""

        raise InputError(
            f"text_attention_mask applies to SigLIP checkpoints (transformers' SiglipModel); this is a "
            f"{self.name} checkpoint: export it without the option"
        )
