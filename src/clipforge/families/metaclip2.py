"""Meta's MetaCLIP 2 "worldwide" in Hugging Face format (``MetaClip2Model``, model type ``metaclip_2``): CLIP's
encoders and wrappers (causal text tower with its attention mask, projections, softmax scores) with a multilingual
tokenizer: XLM-V's SentencePiece Unigram (``XLMRobertaTokenizer``, ``<s> … </s>``, EOS id 2) in the worldwide
checkpoints. The text tower pools at the first ``eos_token_id`` (unlike CLIP it has no argmax rule for EOS id 2),
so the fast tokenizer's ``tokenizer.json`` runs as is (``text.kind = "tokenizers"``), padded to the longest text
with its mask, as HF's processor pads.

The ``mt5`` checkpoints name a slow SentencePiece ``SiglipTokenizer`` instead; they are refused in one line until
a test covers them."""

from __future__ import annotations

from clipforge.errors import UnsupportedModelError
from clipforge.families.base import is_fast_tokenizer, tokenizer_json_text_spec
from clipforge.families.clip import ClipFamily
from clipforge.families.known import METACLIP2_CHECKPOINTS
from clipforge.specs import TextSpec


class MetaClip2Family(ClipFamily):
    name = "metaclip2"
    model_types = ("metaclip_2",)
    checkpoints = METACLIP2_CHECKPOINTS
    model_class = "MetaClip2Model"

    def text_spec(self, model, tokenizer) -> TextSpec:
        if not is_fast_tokenizer(tokenizer):
            raise UnsupportedModelError(
                f"MetaCLIP 2 with a slow {type(tokenizer).__name__} (the mt5 checkpoints) is not supported yet; "
                "the worldwide checkpoints (XLM-V tokenizer) are: see 'clipforge models'"
            )
        return tokenizer_json_text_spec(
            tokenizer,
            context_length=int(model.config.text_config.max_position_embeddings),
            padding="longest",
            uses_attention_mask=True,
        )
