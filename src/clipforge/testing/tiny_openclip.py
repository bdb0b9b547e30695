"""Random-weight open_clip checkpoints built locally: a folder in open_clip's hub layout
(``open_clip_config.json`` + ``open_clip_model.safetensors``) or an OpenAI-style state-dict file (``*.pt``).

``kind="vit"`` is a VisionTransformer image encoder, ``kind="resnet"`` a ModifiedResNet with attention pooling,
``kind="mobileclip"`` MobileCLIP's layout (a timm FastViT image encoder with re-parameterisable blocks,
``tiny_fastvit``, and a text transformer without causal mask);
``shape="tiny"`` is small enough for tests, ``shape="base"`` keeps an open_clip architecture's own config
(``arch=``, e.g. RN50 or ViT-B-32) for benchmarks and export-time checks. CLIP text encoders use open_clip's
full CLIP vocabulary (49408 tokens), since its tokenizer does. ``HF_KINDS`` have a Hugging Face tokenizer or text
encoder (SigLIP 2 with a timm image encoder, CLIPA's BERT, XLM-R, RoBERTa, mT5, NLLB): their hub names are
replaced by local stand-ins (``testing.hf_stand_ins``), tiny ones for the tiny kinds, the real dimensions for
``shape="base"`` architectures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clipforge.families.openclip_io import import_open_clip
from clipforge.hub import TOKENIZER_FILES
from clipforge.testing import tiny_fastvit, tiny_timm_vit
from clipforge.testing.hf_stand_ins import offline_config

# widths are multiples of 64 so OpenAI's loader (heads = width // 64) rebuilds the same model from the weights
TINY_CONFIGS = {
    "vit": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
    },
    "resnet": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
    },
    "mobileclip": {  # MobileCLIP2-S0.json's layout, shrunk
        "embed_dim": 32,
        "vision_cfg": {
            "timm_model_name": tiny_fastvit.TINY_MCI,
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": None,
            "timm_drop": 0.0,
            "timm_drop_path": 0.0,
            "image_size": 64,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 1,
            "layers": 2,
            "no_causal_mask": True,
        },
        "custom_text": True,
    },
}
_TINY_VIT = TINY_CONFIGS["vit"]["vision_cfg"]
_TINY_TEXT = {"width": 64, "heads": 2, "layers": 2}
# open_clip text towers with a Hugging Face tokenizer or model, shrunk; hub names are replaced by local stand-ins
# (``testing.hf_stand_ins``) when the model is built and saved
TINY_CONFIGS |= {
    "siglip": {  # ViT-B-16-SigLIP2's layout: timm image encoder, open_clip text transformer, Gemma tokenizer
        "embed_dim": 64,
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {
            "image_size": 32,
            "timm_model_name": tiny_timm_vit.TINY_SIGLIP_VIT,
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": "none",
        },
        "text_cfg": {
            "context_length": 64,
            "vocab_size": 1024,
            "hf_tokenizer_name": "timm/ViT-B-16-SigLIP2",
            "tokenizer_kwargs": {"clean": "canonicalize"},
            **_TINY_TEXT,
            "no_causal_mask": True,
            "proj_bias": True,
            "pool_type": "last",
            "norm_kwargs": {"eps": 1e-6},
        },
    },
    "bert": {  # ViT-L-14-CLIPA's layout: BERT tokenizer, [SEP] written as 0, last-token pooling
        "embed_dim": 32,
        "vision_cfg": {**_TINY_VIT, "no_ln_pre": True, "pool_type": "avg", "final_ln_after_pool": True},
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 512,
            "hf_tokenizer_name": "bert-base-uncased",
            "tokenizer_kwargs": {"strip_sep_token": True},
            **_TINY_TEXT,
            "pool_type": "last",
            "no_causal_mask": True,
        },
    },
    "xlmr": {  # xlm-roberta-base-ViT-B-32's layout: a HF text encoder, mean pooling
        "embed_dim": 32,
        "vision_cfg": dict(_TINY_VIT),
        "text_cfg": {
            "hf_model_name": "clipforge-tiny/xlm-roberta",
            "hf_tokenizer_name": "clipforge-tiny/xlm-roberta",
            "hf_pooler_type": "mean_pooler",
        },
    },
    "roberta": {  # coca_roberta / roberta-ViT-B-32: linear projection
        "embed_dim": 32,
        "vision_cfg": dict(_TINY_VIT),
        "text_cfg": {
            "hf_model_name": "clipforge-tiny/roberta",
            "hf_tokenizer_name": "clipforge-tiny/roberta",
            "hf_proj_type": "linear",
            "hf_pooler_type": "mean_pooler",
        },
    },
    "mt5": {  # mt5-base-ViT-B-32: the encoder of an encoder-decoder model
        "embed_dim": 32,
        "vision_cfg": dict(_TINY_VIT),
        "text_cfg": {
            "hf_model_name": "clipforge-tiny/mt5",
            "hf_tokenizer_name": "clipforge-tiny/mt5",
            "hf_pooler_type": "mean_pooler",
        },
    },
    "nllb": {  # nllb-clip-base: M2M100's encoder, first-token pooling
        "embed_dim": 32,
        "vision_cfg": dict(_TINY_VIT),
        "text_cfg": {
            "hf_model_name": "clipforge-tiny/nllb",
            "hf_tokenizer_name": "clipforge-tiny/nllb",
            "hf_proj_type": "linear",
            "hf_pooler_type": "cls_pooler",
        },
    },
}
HF_KINDS = ("siglip", "bert", "xlmr", "roberta", "mt5", "nllb")
BASE_ARCH = {"vit": "ViT-B-32", "resnet": "RN50", "mobileclip": "MobileCLIP2-S0"}
DEFAULT_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def model_config(kind: str = "vit", shape: str = "tiny", arch: str | None = None) -> dict:
    if shape == "tiny":
        config = json.loads(json.dumps(TINY_CONFIGS[kind]))
        _register_tiny_towers(config)
        return config

    open_clip = import_open_clip()
    name = arch or BASE_ARCH[kind]
    config = open_clip.get_model_config(name)
    if config is None:
        raise ValueError(f"{name} is not an open_clip architecture")
    return json.loads(json.dumps(config))


def _register_tiny_towers(config: dict) -> None:
    name = config.get("vision_cfg", {}).get("timm_model_name")
    if name == tiny_fastvit.TINY_MCI:
        tiny_fastvit.register()
    elif name == tiny_timm_vit.TINY_SIGLIP_VIT:
        tiny_timm_vit.register()


def random_model(config: dict, seed: int = 0):
    """A random-weight open_clip model of ``config``; hub names of a HF text tower (``hf_model_name``) are
    replaced by local stand-ins with the real dimensions (``testing.hf_stand_ins``), so it builds offline."""
    import torch

    open_clip = import_open_clip()
    _register_tiny_towers(config)
    torch.manual_seed(seed)
    config = offline_config(config)
    if "hf_model_name" in config.get("text_cfg", {}):  # random weights: the config only, as open_clip does
        config["text_cfg"]["hf_model_pretrained"] = False
    custom_text = config.pop("custom_text", False) or "hf_model_name" in config.get("text_cfg", {})
    cls = open_clip.model.CustomTextCLIP if custom_text else open_clip.model.CLIP
    model = cls(
        **{
            k: v
            for k, v in config.items()
            if k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias")
        }
    )
    return model.eval()


def save_hub_layout(
    model, config: dict, folder: Path, preprocess: dict | None = None, *, tokenizer_in_folder: bool = True
) -> Path:
    """``open_clip_config.json`` (model_cfg + preprocess_cfg) and ``open_clip_model.safetensors``. Hub names of
    the text tower are replaced by local stand-in folders; a HF tokenizer's files are copied beside the weights
    (as SigLIP's hub repos ship them) unless ``tokenizer_in_folder`` is False (then ``hf_tokenizer_name`` names
    the tokenizer, as repos that take it from another repo do)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = offline_config(config)
    tokenizer = config.get("text_cfg", {}).get("hf_tokenizer_name")
    if tokenizer and tokenizer_in_folder:
        for name in TOKENIZER_FILES:
            if name != "config.json" and (Path(tokenizer) / name).is_file():
                shutil.copy(Path(tokenizer) / name, folder / name)
    vision = config["vision_cfg"]
    pre = {"size": vision.get("image_size", 224), **DEFAULT_PREPROCESS, **(preprocess or {})}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": pre}, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def save_timm_openai_layout(model, config: dict, folder: Path) -> Path:
    """The layout of OpenAI's weights on the hub as timm publishes them (``timm/vit_base_patch32_clip_224.openai``):
    timm's ``config.json`` and image-tower ``model.safetensors`` beside open_clip's ``open_clip_config.json``
    (its preprocess_cfg has mean and std only) and ``open_clip_pytorch_model.bin`` (no open_clip safetensors)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pre = {k: DEFAULT_PREPROCESS[k] for k in ("mean", "std")}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": pre}, indent=2))
    torch.save(model.state_dict(), str(folder / "open_clip_pytorch_model.bin"))
    timm_config = {
        "architecture": "vit_base_patch32_clip_224",
        "num_classes": int(config["embed_dim"]),
        "pretrained_cfg": {"tag": "openai", "mean": pre["mean"], "std": pre["std"], "num_classes": config["embed_dim"]},
    }
    (folder / "config.json").write_text(json.dumps(timm_config, indent=2))
    visual = {k: v.contiguous() for k, v in model.visual.state_dict().items()}
    save_file(visual, str(folder / "model.safetensors"))
    return folder


def save_openai_file(model, path: Path) -> Path:
    """A plain state dict in OpenAI's naming (open_clip's CLIP class uses the same names), as ``torch.save``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), str(path))
    return path


def save_openclip_checkpoint(
    folder: Path,
    *,
    kind: str = "vit",
    layout: str = "hub",
    shape: str = "tiny",
    arch: str | None = None,
    seed: int = 0,
    preprocess: dict | None = None,
) -> Path:
    """A random-weight open_clip checkpoint: ``folder`` in hub layout (``"hub"``; ``"hub-tokenizer-elsewhere"``:
    a HF tokenizer named by ``hf_tokenizer_name`` only; ``"timm-openai"``: timm's layout of OpenAI's weights), or
    ``folder/<name>.pt`` (``"openai"``; the path of the file is returned)."""
    config = model_config(kind, shape, arch)
    model = random_model(config, seed)
    if layout == "openai":
        return save_openai_file(model, Path(folder) / f"{arch or kind}.pt")
    if layout == "timm-openai":
        return save_timm_openai_layout(model, config, Path(folder))
    return save_hub_layout(
        model, config, Path(folder), preprocess, tokenizer_in_folder=layout != "hub-tokenizer-elsewhere"
    )
