"""Google SigLIP (``SiglipModel``): no text attention mask, fixed-length padding, sigmoid scores with a bias."""

from __future__ import annotations

from pathlib import Path

from clipforge.families.base import Family
from clipforge.families.clip import _image_module, _text_module
from clipforge.families.known import SIGLIP_CHECKPOINTS
from clipforge.registry import register_family
from clipforge.specs import EncoderIO, TensorSpec, TextSpec

SIGLIP_TEXT_IO = EncoderIO(
    inputs=(TensorSpec("input_ids", "int64", ("batch_size", "sequence_length")),),
    outputs=(TensorSpec("text_embeds", "float32", ("batch_size", "embed_dim")),),
)


@register_family
class SiglipFamily(Family):
    name = "siglip"
    model_types = ("siglip",)
    checkpoints = SIGLIP_CHECKPOINTS
    text_io = SIGLIP_TEXT_IO
    static_sequence_length = 64

    def load_model(self, folder):
        from transformers import SiglipModel

        return SiglipModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    def text_spec(self, model, tokenizer) -> TextSpec:
        return TextSpec(
            context_length=int(model.config.text_config.max_position_embeddings),
            padding="max_length",
            lowercase=bool(getattr(tokenizer, "do_lower_case", True)),
            pad_id=int(tokenizer.pad_token_id),
            eos_id=int(tokenizer.eos_token_id),
            bos_id=None,
            pooling="last",
            uses_attention_mask=False,
            kind="sentencepiece",
        )

    def embed_dim(self, model) -> int:
        return int(model.config.text_config.hidden_size)

    def image_module(self, model, interpolate: bool = False):
        return _image_module(model, interpolate)

    def text_module(self, model):
        return _text_module(model, with_mask=False)

    def save_tiny_checkpoint(self, folder, *, shape: str = "tiny", image_size: int = 32, **overrides) -> Path:
        from clipforge.testing.tiny import save_siglip_checkpoint

        return save_siglip_checkpoint(Path(folder), shape=shape, image_size=image_size, **overrides)
