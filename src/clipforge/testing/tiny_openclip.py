"""Random-weight open_clip checkpoints built locally: a folder in open_clip's hub layout
(``open_clip_config.json`` + ``open_clip_model.safetensors``) or an OpenAI-style state-dict file (``*.pt``).

``kind="vit"`` is a VisionTransformer image encoder, ``kind="resnet"`` a ModifiedResNet with attention pooling,
``kind="mobileclip"`` MobileCLIP's layout (a timm FastViT image encoder with re-parameterisable blocks,
``tiny_fastvit``, and a text transformer without causal mask);
``shape="tiny"`` is small enough for tests, ``shape="base"`` keeps an open_clip architecture's own config
(``arch=``, e.g. RN50 or ViT-B-32) for benchmarks and export-time checks. The text encoder always uses open_clip's
full CLIP vocabulary (49408 tokens), since its tokenizer does.
"""

from __future__ import annotations

import json
from pathlib import Path

from clipforge.families.openclip_io import import_open_clip
from clipforge.testing import tiny_fastvit

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
BASE_ARCH = {"vit": "ViT-B-32", "resnet": "RN50", "mobileclip": "MobileCLIP2-S0"}
DEFAULT_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def model_config(kind: str = "vit", shape: str = "tiny", arch: str | None = None) -> dict:
    if shape == "tiny":
        if kind == "mobileclip":
            tiny_fastvit.register()
        return json.loads(json.dumps(TINY_CONFIGS[kind]))

    open_clip = import_open_clip()
    name = arch or BASE_ARCH[kind]
    config = open_clip.get_model_config(name)
    if config is None:
        raise ValueError(f"{name} is not an open_clip architecture")
    return json.loads(json.dumps(config))


def random_model(config: dict, seed: int = 0):
    import torch

    open_clip = import_open_clip()
    torch.manual_seed(seed)
    config = dict(config)
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


def save_hub_layout(model, config: dict, folder: Path, preprocess: dict | None = None) -> Path:
    """``open_clip_config.json`` (model_cfg + preprocess_cfg) and ``open_clip_model.safetensors``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vision = config["vision_cfg"]
    pre = {"size": vision.get("image_size", 224), **DEFAULT_PREPROCESS, **(preprocess or {})}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": pre}, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
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
    """A random-weight open_clip checkpoint: ``folder`` in hub layout, or ``folder/<name>.pt`` (OpenAI layout;
    the path of the file is returned)."""
    config = model_config(kind, shape, arch)
    model = random_model(config, seed)
    if layout == "openai":
        return save_openai_file(model, Path(folder) / f"{arch or kind}.pt")
    return save_hub_layout(model, config, Path(folder), preprocess)
