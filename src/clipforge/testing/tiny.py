"""Random-weight checkpoints saved as normal HF folders (config, safetensors, tokenizer, processor config).

``shape="tiny"`` is a few-hundred-kB model for tests; ``shape="base"`` keeps the library's default config
(ViT-B/32 for CLIP, base/16 for SigLIP) for benchmarks and export-time checks. CLIP's ``tokenizer_vocab``
sets its tokenizer's size (1000; ``CLIP_VOCAB`` for OpenAI's 49 408, where loading it is part of what is timed).
"""

from __future__ import annotations

import json
from pathlib import Path

from clipforge.testing.tokenizers import (
    save_clip_tokenizer,
    save_gemma_tokenizer,
    save_siglip_tokenizer,
    save_unigram_tokenizer,
)

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

TINY_ENCODER_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def _write_processor(folder: Path, config: dict) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def clip_processor_config(image_size: int) -> dict:
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": OPENAI_MEAN,
        "image_std": OPENAI_STD,
        "do_convert_rgb": True,
    }


# What SigLIP's processors (fixed-size and NaFlex) do after resizing: bilinear, rescale, normalise to [-1, 1].
SIGLIP_PIXELS = {
    "do_resize": True,
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_convert_rgb": True,
}


def siglip_processor_config(image_size: int) -> dict:
    size = {"height": image_size, "width": image_size}
    return {"image_processor_type": "SiglipImageProcessor", "size": size, **SIGLIP_PIXELS}


def save_clip_checkpoint(
    folder: Path,
    *,
    shape: str = "tiny",
    image_size: int = 32,
    seed: int = 0,
    encoder_config: dict | None = None,
    patch_size: int = 8,
    tokenizer_vocab: int = 1000,
    **overrides,
):
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = save_clip_tokenizer(folder, vocab_size=tokenizer_vocab)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if shape == "tiny":
        text = dict(encoder_config or TINY_ENCODER_CONFIG, vocab_size=len(tok), max_position_embeddings=77, **ids)
        vision = dict(encoder_config or TINY_ENCODER_CONFIG, image_size=image_size, patch_size=patch_size)
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16, **overrides)
    else:
        config = CLIPConfig(text_config=ids, **overrides)
        image_size = config.vision_config.image_size
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(str(folder))
    _write_processor(folder, clip_processor_config(image_size))
    return folder


def save_siglip_checkpoint(
    folder: Path,
    *,
    shape: str = "tiny",
    image_size: int = 32,
    seed: int = 0,
    encoder_config: dict | None = None,
    tokenizer: str = "sentencepiece",
    **overrides,
):
    """A ``SiglipModel``; ``tokenizer="gemma"`` makes it SigLIP 2-style (fixed resolution: the same model with a
    Gemma BPE tokenizer)."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = save_gemma_tokenizer(folder) if tokenizer == "gemma" else save_siglip_tokenizer(folder)
    ids = {"bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if shape == "tiny":
        text = dict(encoder_config or TINY_ENCODER_CONFIG, vocab_size=len(tok), max_position_embeddings=64, **ids)
        vision = dict(encoder_config or TINY_ENCODER_CONFIG, image_size=image_size, patch_size=8)
        config = SiglipConfig(text_config=text, vision_config=vision, **overrides)
    else:
        config = SiglipConfig(text_config=ids, **overrides)
        image_size = config.vision_config.image_size
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(str(folder))
    _write_processor(folder, siglip_processor_config(image_size))
    return folder


def siglip2_processor_config(patch_size: int, max_num_patches: int) -> dict:
    budget = {"patch_size": patch_size, "max_num_patches": max_num_patches}
    return {"image_processor_type": "Siglip2ImageProcessor", **budget, **SIGLIP_PIXELS}


def save_siglip2_checkpoint(
    folder: Path,
    *,
    shape: str = "tiny",
    seed: int = 0,
    patch_size: int = 8,
    num_patches: int = 16,
    max_num_patches: int = 64,
    encoder_config: dict | None = None,
):
    """A SigLIP 2 NaFlex ``Siglip2Model`` (variable patch count, aspect kept) with a Gemma BPE tokenizer.
    ``num_patches`` is the position-embedding grid (a square: 16 = 4x4), resized per image to its patch grid;
    ``max_num_patches`` the processor's patch budget. ``shape="base"``: transformers' default config
    (base/16, 256 grid positions) with the tiny tokenizer's vocabulary."""
    import torch
    from transformers import Siglip2Config, Siglip2Model

    folder.mkdir(parents=True, exist_ok=True)
    tok = save_gemma_tokenizer(folder)
    ids = {"bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if shape == "tiny":
        text = dict(encoder_config or TINY_ENCODER_CONFIG, vocab_size=len(tok), max_position_embeddings=64, **ids)
        vision = dict(encoder_config or TINY_ENCODER_CONFIG, num_patches=num_patches, patch_size=patch_size)
    else:
        text, vision = dict(ids, vocab_size=len(tok)), {}
        patch_size = 16
    config = Siglip2Config(text_config=text, vision_config=vision)
    torch.manual_seed(seed)
    Siglip2Model(config).eval().save_pretrained(str(folder))
    _write_processor(folder, siglip2_processor_config(patch_size, max_num_patches))
    return folder


def save_metaclip2_checkpoint(
    folder: Path,
    *,
    image_size: int = 32,
    seed: int = 0,
    encoder_config: dict | None = None,
    tokenizer_texts: list[str] | None = None,
    **overrides,
):
    """A ``MetaClip2Model`` (MetaCLIP 2 worldwide in HF format): CLIP's towers with an XLM-R-style Unigram
    tokenizer (``<s> … </s>``, EOS id 2, SentencePiece's ``nmt_nfkc`` map), trained on ``tokenizer_texts``
    (default: the English corpus)."""
    import torch
    from transformers import MetaClip2Config, MetaClip2Model

    folder.mkdir(parents=True, exist_ok=True)
    tok = save_unigram_tokenizer(folder, context_length=77, texts=tokenizer_texts, precompiled=True)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    text = dict(encoder_config or TINY_ENCODER_CONFIG, vocab_size=len(tok), max_position_embeddings=77, **ids)
    vision = dict(encoder_config or TINY_ENCODER_CONFIG, image_size=image_size, patch_size=8)
    config = MetaClip2Config(text_config=text, vision_config=vision, projection_dim=16, **overrides)
    torch.manual_seed(seed)
    MetaClip2Model(config).eval().save_pretrained(str(folder))
    _write_processor(folder, clip_processor_config(image_size))
    return folder
