"""OpenAI CLIP and LAION/OpenCLIP checkpoints in Hugging Face format (``CLIPModel``)."""

from __future__ import annotations

from clipforge.families.base import Family
from clipforge.families.known import CLIP_CHECKPOINTS
from clipforge.specs import EncoderIO, TensorSpec, TextSpec

CLIP_TEXT_IO = EncoderIO(
    inputs=(
        TensorSpec("input_ids", "int64", ("batch_size", "sequence_length")),
        TensorSpec("attention_mask", "int64", ("batch_size", "sequence_length")),
    ),
    outputs=(TensorSpec("text_embeds", "float32", ("batch_size", "embed_dim")),),
)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _image_module(model, interpolate: bool = False):
    import torch

    class ImageEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            out = self.model.get_image_features(pixel_values=pixel_values, interpolate_pos_encoding=interpolate)
            return out.pooler_output

    return ImageEncoder().eval()


def _text_module(model, with_mask: bool):
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask=None):
            mask = attention_mask if with_mask else None
            return self.model.get_text_features(input_ids=input_ids, attention_mask=mask).pooler_output

    return TextEncoder().eval()


class ClipFamily(Family):
    name = "clip"
    model_types = ("clip",)
    checkpoints = CLIP_CHECKPOINTS
    text_io = CLIP_TEXT_IO
    static_sequence_length = 77
    model_class = "CLIPModel"  # the transformers class that loads the checkpoint

    def load_model(self, folder):
        import transformers

        model_class = getattr(transformers, self.model_class)
        return model_class.from_pretrained(str(folder), attn_implementation="eager").eval()

    def text_spec(self, model, tokenizer) -> TextSpec:
        text_config = model.config.text_config
        return TextSpec(
            context_length=int(text_config.max_position_embeddings),
            padding="longest",
            lowercase=True,
            pad_id=int(tokenizer.pad_token_id),
            eos_id=int(tokenizer.eos_token_id),
            uses_attention_mask=True,
        )

    def embed_dim(self, model) -> int:
        return int(model.config.projection_dim)

    def image_module(self, model, interpolate: bool = False):
        return _image_module(model, interpolate)

    def text_module(self, model):
        return _text_module(model, with_mask="attention_mask" in self.text_io.input_names)

    def with_text_mask(self) -> Family:
        return self  # CLIP's text graph always takes its attention mask
