"""A tiny MobileCLIP image encoder for tests: timm's FastViT ``fastvit_mci0`` recipe (MobileOne stem, RepMixer
stages, a final attention stage with a re-parameterisable conditional position encoding, large-kernel-conv
downsampling, squeeze-excite) at a few thousandths of its size, registered in timm as ``TINY_MCI`` so an open_clip
config can name it (``vision_cfg.timm_model_name``), as MobileCLIP's configs name ``fastvit_mci0``.

Registration lives in the process that calls ``register()``: a checkpoint that names ``TINY_MCI`` loads only there.
"""

from __future__ import annotations

__all__ = ["TINY_MCI", "randomize_train_state", "register"]

TINY_MCI = "clipforge_tiny_mci"


def register() -> str:
    """Register ``TINY_MCI`` in timm's model registry (once per process); returns the name."""
    from functools import partial

    import timm
    from timm.models import fastvit, register_model

    if timm.is_model(TINY_MCI):
        return TINY_MCI

    def clipforge_tiny_mci(pretrained=False, **kwargs):
        args = dict(
            layers=(1, 1, 2, 1),
            embed_dims=(8, 16, 32, 64),
            mlp_ratios=(3, 3, 3, 3),
            se_downsamples=(False, False, True, True),
            pos_embs=(None, None, None, partial(fastvit.RepConditionalPosEnc, spatial_shape=(7, 7))),
            token_mixers=("repmixer", "repmixer", "repmixer", "attention"),
            lkc_use_act=True,
        )
        return fastvit._create_fastvit(TINY_MCI, pretrained=pretrained, **dict(args, **kwargs))

    register_model(clipforge_tiny_mci)
    return TINY_MCI


def randomize_train_state(model, seed: int = 0) -> None:
    """Give every BatchNorm random statistics and affine parameters and every layer scale a weight of order
    one, so the folding of branches, BatchNorms and layer scales is tested (a fresh model has BatchNorms that
    are identities and layer scales of 1e-5, which hide a wrong fold)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.2)
            for name, param in module.named_parameters(recurse=False):
                if "layer_scale" in name or name == "gamma":
                    param.copy_(torch.rand(param.shape, generator=gen) * 0.5 + 0.25)
