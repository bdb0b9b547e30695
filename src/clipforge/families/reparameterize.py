"""Train-time -> inference-time folding ("re-parameterisation") of PyTorch encoders before export.

MobileCLIP's image encoders (timm's FastViT ``fastvit_mci*``: ``MobileOneBlock``, ``RepMixer``,
``ReparamLargeKernelConv``, ``RepConditionalPosEnc``) and other RepVGG-style networks train with parallel
conv/BatchNorm/identity branches that are mathematically one convolution at inference. timm gives such modules a
hook, and ``timm.utils.reparameterize_model`` walks a model calling them: ``fuse()`` (returns the replacement
module), ``reparameterize()`` or ``switch_to_deploy()`` (in place). ``fold`` runs that same walk on a deep copy,
so the caller's model keeps its train-time form (the export validates the folded graph against it), and says what
was folded.
"""

from __future__ import annotations

import copy
from collections import Counter

HOOKS = ("fuse", "reparameterize", "switch_to_deploy")  # the order timm's reparameterize_model tries them in


def hook_of(module) -> str | None:
    """The folding hook ``module`` has, or None."""
    return next((name for name in HOOKS if callable(getattr(module, name, None))), None)


def foldable(module) -> dict[str, int]:
    """``{class name: count}`` of the modules under ``module`` (itself included) that have a folding hook
    (nested ones too: a ``RepMixer`` holds two ``MobileOneBlock``)."""
    found = Counter(type(m).__name__ for m in module.modules() if hook_of(m))
    return dict(sorted(found.items()))


def _fold_in_place(parent) -> None:
    """timm's ``reparameterize_model`` walk (timm/models/_manipulate.py), on ``parent``'s children."""
    for name, child in list(parent.named_children()):
        hook = hook_of(child)
        if hook == "fuse":
            setattr(parent, name, child.fuse())
        elif hook:
            getattr(child, hook)()
        _fold_in_place(getattr(parent, name))


def fold(model):
    """A deep copy of ``model`` with every foldable module folded, in eval mode; ``model`` is not touched."""
    import torch

    folded = copy.deepcopy(model).eval()
    with torch.no_grad():
        _fold_in_place(folded)
    return folded
