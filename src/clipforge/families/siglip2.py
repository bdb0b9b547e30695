"""Google SigLIP 2 NaFlex (``Siglip2Model``, model type ``siglip2``): SigLIP 2's text encoder with an image encoder
that keeps each image's aspect ratio and takes a variable number of patches up to a budget.

The image graph takes what ``Siglip2ImageProcessor`` produces, batched with padding: ``pixel_values`` [B, N,
3·P·P] (patches in row-major order, then zero padding), ``pixel_attention_mask`` [B, N] (1 = a real patch) and
``spatial_shapes`` [B, 2] (each image's patch grid, rows and columns); the batch and N are dynamic. Inside it,
the learned square grid of position embeddings is resized to each image's grid with antialiased bilinear
weights (transformers computes them from ``spatial_shapes`` with tensor ops, which the export keeps as graph
ops), padded patches are masked out of attention and out of the attention-pooling head.

The pooling head is ``torch.nn.MultiheadAttention``, whose traced graph fixes the number of keys (a reshape to
the example's N): the exported module computes the same attention with shapes taken from the input (weights
shared, nothing patched in the model); export validates it against ``get_image_features`` itself.

The patch budget is data: the processor's ``max_num_patches`` (or ``ExportOptions.max_patches``) is the manifest's
``image.max_patches``; a load (``max_patches=``) or a request may use another, as the graph takes any N."""

from __future__ import annotations

from dataclasses import replace

from clipforge.families.base import Family, pixel_steps
from clipforge.families.known import SIGLIP2_NAFLEX_CHECKPOINTS
from clipforge.families.siglip import MaskedSiglipFamily, SiglipFamily
from clipforge.specs import EncoderIO, ImageSpec, TensorSpec

NAFLEX_IMAGE_IO = EncoderIO(
    inputs=(
        TensorSpec("pixel_values", "float32", ("batch_size", "num_patches", "patch_dim")),
        TensorSpec("pixel_attention_mask", "int64", ("batch_size", "num_patches")),
        TensorSpec("spatial_shapes", "int64", ("batch_size", 2)),
    ),
    outputs=(TensorSpec("image_embeds", "float32", ("batch_size", "embed_dim")),),
)


def naflex_image_spec(processor, max_patches: int | None = None) -> ImageSpec:
    """The ``ImageSpec`` of a ``Siglip2ImageProcessor`` (PIL backend); ``max_patches`` replaces its budget."""
    return ImageSpec(
        resize_mode="naflex" if getattr(processor, "do_resize", True) else "none",
        size=(0, 0),
        crop_size=None,
        patch_size=int(processor.patch_size),
        max_patches=int(max_patches or processor.max_num_patches),
        **pixel_steps(processor),
    )


def _attention_pool(head, hidden, mask):
    """``Siglip2MultiheadAttentionPoolingHead.forward`` with the key count read from ``hidden``: the probe
    attends to the real patches only (``mask`` 0 = padding), then layer norm + MLP with a residual."""
    import math

    import torch
    from torch.nn import functional

    batch, width = hidden.shape[0], hidden.shape[-1]
    heads = head.num_heads
    attention = head.attention
    wq, wk, wv = attention.in_proj_weight.chunk(3)
    bq, bk, bv = attention.in_proj_bias.chunk(3)
    query = functional.linear(head.probe, wq, bq).reshape(1, heads, 1, width // heads)
    keys = functional.linear(hidden, wk, bk).reshape(batch, -1, heads, width // heads).transpose(1, 2)
    values = functional.linear(hidden, wv, bv).reshape(batch, -1, heads, width // heads).transpose(1, 2)
    scores = (query / math.sqrt(width // heads)) @ keys.transpose(-1, -2)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    pooled = (torch.softmax(scores, dim=-1) @ values).transpose(1, 2).reshape(batch, 1, width)
    pooled = attention.out_proj(pooled)
    pooled = pooled + head.mlp(head.layernorm(pooled))
    return pooled[:, 0]


def _image_module(model):
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    class NaflexImageEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = model.vision_model

        def forward(self, pixel_values, pixel_attention_mask, spatial_shapes):
            vision = self.vision
            hidden = vision.embeddings(pixel_values, spatial_shapes)
            mask = create_bidirectional_mask(
                config=vision.config, inputs_embeds=hidden, attention_mask=pixel_attention_mask
            )
            hidden = vision.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
            return _attention_pool(vision.head, vision.post_layernorm(hidden), pixel_attention_mask)

    return NaflexImageEncoder().eval()


def _reference_module(model):
    """The image encoder exactly as transformers runs it (``get_image_features``): what export validates against."""
    import torch

    class ImageFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values, pixel_attention_mask, spatial_shapes):
            return self.model.get_image_features(
                pixel_values=pixel_values, pixel_attention_mask=pixel_attention_mask, spatial_shapes=spatial_shapes
            ).pooler_output

    return ImageFeatures().eval()


class Siglip2Family(SiglipFamily):
    name = "siglip2"
    model_types = ("siglip2",)
    checkpoints = SIGLIP2_NAFLEX_CHECKPOINTS
    image_io = NAFLEX_IMAGE_IO
    model_class = "Siglip2Model"

    def image_spec(self, folder) -> ImageSpec:
        return naflex_image_spec(self.load_image_processor(folder))

    def image_module(self, model, interpolate: bool = False):
        return _image_module(model)

    def reference_image_module(self, model, interpolate: bool = False):
        return _reference_module(model)

    def with_text_mask(self) -> Family:
        return MaskedSiglip2Family()


class MaskedSiglip2Family(Siglip2Family):
    """SigLIP 2 NaFlex with transformers 5's masked text graph (``text_attention_mask``); not registered."""

    text_io = MaskedSiglipFamily.text_io

    def text_spec(self, model, tokenizer):
        return replace(super().text_spec(model, tokenizer), uses_attention_mask=True)

    def with_text_mask(self) -> Family:
        return self
