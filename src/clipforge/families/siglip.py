"""Google SigLIP (``SiglipModel``): CLIP's encoders and wrappers, minus the text attention mask, with fixed-length
SentencePiece text, no projection (embedding width = text width) and sigmoid scores with a bias.

SigLIP was trained with no text mask: texts are padded with ``</s>`` to the fixed length and every position,
padding included, is attended (open_clip and big_vision feed no mask; transformers 4's tokenizer returned none).
transformers 5's ``SiglipTokenizer`` returns an ``attention_mask`` and ``SiglipModel`` applies it (padding keys
masked, the last position still pooled), which changes the text embeddings. The default export follows the
trained model; ``ExportOptions(text_attention_mask=True)`` exports the transformers 5 variant
(``MaskedSiglipFamily``: the text graph takes ``attention_mask``; the manifest records
``text.uses_attention_mask = true``).

SigLIP 2 (fixed resolution: google/siglip2-*-patch*-<size>) is the same ``SiglipModel`` with a Gemma tokenizer
(SentencePiece-style BPE with byte fallback, ``<eos>`` appended, a fast tokenizer whose ``tokenizer.json`` the
runtime runs as is: ``text.kind = "tokenizers"``). A SigLIP checkpoint is taken for SigLIP 2 when its tokenizer
is Gemma's (``GemmaTokenizer``/``GemmaTokenizerFast``, the class google's siglip2 repos name; SigLIP 1 ships a
SentencePiece ``SiglipTokenizer``). SigLIP 2 was trained on lower-cased text and its model cards ask for lower-cased
labels, but its tokenizer keeps case and HF's pipeline passes labels as they are: the export lower-cases by default
(``text.lowercase_texts``: the runtime applies ``str.lower`` first); ``ExportOptions(keep_case=True)`` keeps case,
for parity with the HF pipeline on mixed-case labels."""

from __future__ import annotations

from dataclasses import replace

from clipforge.families.base import Family, is_fast_tokenizer, tokenizer_json_text_spec
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
        length = int(model.config.text_config.max_position_embeddings)
        if is_fast_tokenizer(tokenizer):  # SigLIP 2's Gemma BPE, or any fast tokenizer: its tokenizer.json as is
            return tokenizer_json_text_spec(
                tokenizer,
                context_length=length,
                padding="max_length",
                uses_attention_mask=False,
                lowercase_texts=is_siglip2_tokenizer(tokenizer),
            )
        return TextSpec(
            context_length=length,
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


def is_siglip2_tokenizer(tokenizer) -> bool:
    """SigLIP 2's tokenizer is Gemma's (``GemmaTokenizer``, ``GemmaTokenizerFast`` in transformers 4)."""
    return type(tokenizer).__name__.startswith("GemmaTokenizer")
