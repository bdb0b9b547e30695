"""A tiny SigLIP-style timm image encoder for tests: timm's ``vit_base_patch16_siglip_224`` recipe (no class
token, attention-pooling ``map`` head) at 32x32 pixels, two blocks of width 64, registered in timm as
``TINY_SIGLIP_VIT`` so an open_clip config can name it (``vision_cfg.timm_model_name``), as open_clip's SigLIP
configs name ``vit_base_patch16_siglip_224``. open_clip passes timm no image size, so the size is the recipe's.

Registration lives in the process that calls ``register()``: a checkpoint that names it loads only there.
"""

from __future__ import annotations

__all__ = ["TINY_SIGLIP_VIT", "register"]

TINY_SIGLIP_VIT = "clipforge_tiny_siglip_vit"


def register() -> str:
    """Register ``TINY_SIGLIP_VIT`` in timm's model registry (once per process); returns the name."""
    import timm
    from timm.models import register_model, vision_transformer

    if timm.is_model(TINY_SIGLIP_VIT):
        return TINY_SIGLIP_VIT

    def clipforge_tiny_siglip_vit(pretrained=False, **kwargs):
        args = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, class_token=False, global_pool="map")
        return vision_transformer._create_vision_transformer(
            TINY_SIGLIP_VIT, pretrained=pretrained, **dict(args, **kwargs)
        )

    register_model(clipforge_tiny_siglip_vit)
    return TINY_SIGLIP_VIT
