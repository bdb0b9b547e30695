"""What ``transformers.pipeline`` needs from a model object: ``config``, ``device``, ``dtype`` and no-op
``eval``/``to``. torch and transformers are touched only when the caller already imported them."""

from __future__ import annotations

import sys
from types import SimpleNamespace


class LightConfig(SimpleNamespace):
    """A stand-in for the HF config when none was given: the fields pipelines read."""

    def to_dict(self) -> dict:
        return dict(vars(self))


class HFCompatMixin:
    _hf_config = None
    manifest = None

    @property
    def config(self):
        if self._hf_config is None:
            self._hf_config = LightConfig(
                model_type=self.manifest.family,
                projection_dim=self.manifest.embed_dim,
                logit_scale_init_value=self.manifest.logit_scale,
                id2label={},
                label2id={},
                name_or_path=self.manifest.source,
                architectures=[],
                _attn_implementation="eager",
            )
        return self._hf_config

    @property
    def device(self):
        torch = sys.modules.get("torch")
        return torch.device("cpu") if torch else "cpu"

    @property
    def dtype(self):
        torch = sys.modules.get("torch")
        return torch.float32 if torch else "float32"

    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def can_generate(self) -> bool:
        return False
