"""Google SigLIP (``SiglipModel``): CLIP's encoders and wrappers, minus the text attention mask, with fixed-length
SentencePiece text, no projection (embedding width = text width) and sigmoid scores with a bias.

SigLIP was trained with no text mask: texts are padded with ``</s>`` to the fixed length and every position,
padding included, is attended (open_clip and big_vision feed no mask; transformers 4's tokenizer returned none).
transformers 5's ``SiglipTokenizer`` returns an ``attention_mask`` and ``SiglipModel`` applies it (padding keys
masked, the last position still pooled), which changes the text embeddings. The default export follows the
trained model; ``ExportOptions(text_attention_mask=True)`` exports the transformers 5 variant
(``MaskedSiglipFamily``: the text graph takes ``attention_mask``; the manifest records
``text.uses_attention_mask = true``)."""

from __future__ import annotations

from dataclasses import replace

from clipforge.families.base import Family
from clipforge.families.clip import ClipFamily
from clipforge.families.known import SIGLIP_CHECKPOINTS
from clipforge.specs import EncoderIO, TextSpec

SIGLIP_TEXT_IO = EncoderIO(inputs=ClipFamily.text_io.inputs[:1], outputs=ClipFamily.text_io.outputs)


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

    def with_text_mask(self) -> Family:
        return MaskedSiglipFamily()


class MaskedSiglipFamily(SiglipFamily):
    """SigLIP as transformers 5 runs it: the text graph takes ``attention_mask`` (CLIP's text interface) and
    passes it to ``get_text_features``. Not registered: checkpoints and manifests are still family "siglip"."""

    text_io = ClipFamily.text_io

    def text_spec(self, model, tokenizer) -> TextSpec:
        return replace(super().text_spec(model, tokenizer), uses_attention_mask=True)

    def with_text_mask(self) -> Family:
        return self
