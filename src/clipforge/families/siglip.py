"""Google SigLIP (``SiglipModel``): CLIP's towers and wrappers, minus the text attention mask, with fixed-length
SentencePiece text, no projection (embedding width = text width) and sigmoid scores with a bias."""

from __future__ import annotations

from pathlib import Path

from clipforge.families.clip import ClipFamily
from clipforge.families.known import SIGLIP_CHECKPOINTS
from clipforge.registry import register_family
from clipforge.specs import EncoderIO, TextSpec

SIGLIP_TEXT_IO = EncoderIO(inputs=ClipFamily.text_io.inputs[:1], outputs=ClipFamily.text_io.outputs)


@register_family
class SiglipFamily(ClipFamily):
    name = "siglip"
    model_types = ("siglip",)
    checkpoints = SIGLIP_CHECKPOINTS
    text_io = SIGLIP_TEXT_IO  # input_ids only
    static_sequence_length = 64
    model_class = "SiglipModel"

    def text_spec(self, model, tokenizer) -> TextSpec:
        return TextSpec(
            context_length=int(model.config.text_config.max_position_embeddings),
            padding="max_length",
            lowercase=bool(getattr(tokenizer, "do_lower_case", True)),
            pad_id=int(tokenizer.pad_token_id),
            eos_id=int(tokenizer.eos_token_id),
            uses_attention_mask=False,
            kind="sentencepiece",
        )

    def embed_dim(self, model) -> int:
        return int(model.config.text_config.hidden_size)

    def save_tiny_checkpoint(self, folder, *, shape: str = "tiny", image_size: int = 32, **overrides) -> Path:
        from clipforge.testing.tiny import save_siglip_checkpoint

        return save_siglip_checkpoint(Path(folder), shape=shape, image_size=image_size, **overrides)
