"""open_clip models (``open_clip_torch``): OpenCLIP hub-layout checkpoints and OpenAI's CLIP files, ViT and
ModifiedResNet image encoders. Sources are described in ``clipforge.hub`` (``openclip_source``).

Export runs ``model.encode_image`` / ``model.encode_text`` (projected, not normalised). The text encoder takes
``input_ids`` only, padded to the context length (open_clip adds every position embedding and a fixed-size
causal mask; pooling is at the end-of-text token, the highest id, for CLIP text encoders). Pre-processing is the
checkpoint's ``preprocess_cfg`` through
torchvision (``ImageSpec.convention = "torchvision"``); tokenization is open_clip's ``SimpleTokenizer``
(``TextSpec.kind = "openclip"``) or its ``HFTokenizer`` (the HF tokenizer's own kind, with open_clip's cleaning:
``families.openclip_hf``). Text encoders may be Hugging Face models (``HFTextEncoder``: XLM-R, mT5, NLLB, BERT,
RoBERTa), which build their attention mask from the ids inside the graph; image encoders may be timm models.
Both are recorded in the manifest so the export runs without torch or open_clip.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from clipforge.errors import InputError
from clipforge.families.base import Family
from clipforge.families.known import OPENCLIP_CHECKPOINTS
from clipforge.families.openclip_hf import OpenClipHFTokenizer
from clipforge.families.openclip_io import load_openclip
from clipforge.families.reparameterize import fold, foldable
from clipforge.hub import OpenClipSource
from clipforge.specs import EncoderIO, TensorSpec, TextSpec

OPENCLIP_TEXT_IO = EncoderIO(
    inputs=(TensorSpec("input_ids", "int64", ("batch_size", "sequence_length")),),
    outputs=(TensorSpec("text_embeds", "float32", ("batch_size", "embed_dim")),),
)


@contextlib.contextmanager
def _plain_attention():
    """nn.MultiheadAttention without its inference fast path (``aten::_native_multi_head_attention`` has no
    ONNX export); the same math, restored afterwards."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _encoder(model, encoder: str):
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            with _plain_attention():
                if encoder == "image-encoder":
                    return self.model.get_image_features(pixel_values=x)
                return self.model.get_text_features(input_ids=x)

    return Encoder().eval()


def text_encoder(model):
    """(holder, transformer) of the text encoder: CLIP's own or CustomTextCLIP's ``text`` TextTransformer."""
    inner = model.inner
    holder = inner if hasattr(inner, "transformer") else getattr(inner, "text", None)
    transformer = getattr(holder, "transformer", None)
    return holder, transformer


def _encoder_parts(model) -> dict:
    """The modules of each encoder: the image encoder is ``visual``; the text encoder is everything else
    (CLIP keeps its text modules on the model itself, CustomTextCLIP under ``text``)."""
    inner = model.inner
    visual = inner.visual
    text = [m for name, m in inner.named_children() if name != "visual"]
    return {"image-encoder": [visual], "text-encoder": text}


def folding_record(model) -> dict[str, dict]:
    """``{encoder: {"reparameterized": True, "folded": {class: count}}}`` for the encoders with foldable modules."""
    record = {}
    for encoder, parts in _encoder_parts(model).items():
        found: dict[str, int] = {}
        for part in parts:
            for kind, n in foldable(part).items():
                found[kind] = found.get(kind, 0) + n
        if found:
            record[encoder] = {"reparameterized": True, "folded": dict(sorted(found.items()))}
    return record


def _heads(transformer) -> int:
    attn = transformer.resblocks[0].attn
    return int(attn.num_heads)


class OpenClipFamily(Family):
    name = "openclip"
    model_types = ()  # found by open_clip_config.json or a weights file, not config.json
    checkpoints = OPENCLIP_CHECKPOINTS
    text_io = OPENCLIP_TEXT_IO
    static_sequence_length = 77

    def load_model(self, folder):
        return load_openclip(OpenClipSource(Path(folder))).model

    def text_spec(self, model, tokenizer) -> TextSpec:
        if isinstance(tokenizer, OpenClipHFTokenizer):  # a HF tokenizer behind open_clip's cleaning
            return tokenizer.text_spec()
        # open_clip adds all context_length position embeddings and a fixed causal mask: ids are always padded
        return TextSpec(
            context_length=int(tokenizer.context_length),
            padding="max_length",
            lowercase=True,
            pad_id=0,
            eos_id=int(tokenizer.eos_token_id),
            uses_attention_mask=False,
            kind="openclip",
        )

    def embed_dim(self, model) -> int:
        """The projected width, read from the text projection (a matrix [width, dim] or a Linear)."""
        inner = model.inner
        proj = getattr(inner, "text_projection", None)
        if proj is None:
            proj = getattr(getattr(inner, "text", None), "text_projection", None)
        if proj is None:  # a HF text encoder (its own ``proj``) or no projection: the towers' declared width
            owners = (getattr(inner, "text", None), inner.visual)
            dims = [d for d in (getattr(owner, "output_dim", None) for owner in owners) if isinstance(d, int)]
            if not dims:
                raise InputError(f"cannot tell the embedding width of {type(inner).__name__}: no projection found")
            return dims[0]
        return int(proj.out_features if hasattr(proj, "out_features") else proj.shape[-1])

    def encoder_info(self, model, encoder: str) -> dict:
        if encoder == "image-encoder":
            visual = model.inner.visual
            kind = type(visual).__name__
            if kind == "ModifiedResNet":
                return {"arch": "resnet", "fixed_image_size": True, "image_size": int(visual.image_size)}
            if kind == "VisionTransformer":
                return {
                    "arch": "transformer",
                    "num_heads": _heads(visual.transformer),
                    "hidden_size": int(visual.transformer.width),
                }
            return {"arch": kind}
        _, transformer = text_encoder(model)
        if transformer is None or not hasattr(transformer, "resblocks"):
            return {"arch": type(getattr(model.inner, "text", model.inner)).__name__}
        return {"arch": "transformer", "num_heads": _heads(transformer), "hidden_size": int(transformer.width)}

    def inference_form(self, model):
        """MobileCLIP's FastViT image encoders (and any timm encoder with a ``reparameterize``/``fuse`` hook)
        folded on a copy; other models unchanged."""
        record = folding_record(model)
        return (fold(model), record) if record else (model, {})

    def image_module(self, model, interpolate: bool = False):
        if interpolate:
            kind = type(model.inner.visual).__name__
            why = (
                "a ModifiedResNet's attention pooling has a fixed image size"
                if kind == "ModifiedResNet"
                else "position-embedding interpolation is not implemented for open_clip encoders"
            )
            raise InputError(f"image_size= is not supported for open_clip models ({why}); export without it")
        return _encoder(model, "image-encoder")

    def text_module(self, model):
        return _encoder(model, "text-encoder")
