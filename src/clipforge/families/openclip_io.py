"""open_clip I/O, all in one place: importing open_clip (with torch and torchvision), loading a source into a
wrapped model, its pre-processing as an ``ImageSpec``, and the tokenizer and image processor of an open_clip
model behind the HF call conventions the exporter, the validation cases and the torch baselines use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipforge._torchvision import ensure_torchvision
from clipforge.errors import ClipforgeError, InputError, UnsupportedModelError, require
from clipforge.families.openclip_hf import OpenClipHFTokenizer, folder_tokenizer, is_hf_tokenizer
from clipforge.hub import OpenClipSource
from clipforge.specs import ImageSpec

INTERPOLATION = {"bicubic": 3, "bilinear": 2, "random": 3}  # open_clip evaluates "random" as bicubic


@dataclass
class LoadedOpenClip:
    model: Any  # wrap_model's wrapper around the open_clip model
    tokenizer: OpenClipTokenizer | OpenClipHFTokenizer
    processor: OpenClipProcessor
    image: ImageSpec
    arch: str


def import_open_clip():
    require("torch", "export")
    ensure_torchvision()
    return require("open_clip", "openclip")


def load_openclip(source: OpenClipSource) -> LoadedOpenClip:
    """Build the open_clip model, its tokenizer and pre-processing for ``source``."""
    open_clip = import_open_clip()
    try:
        model, arch, tokenizer = _create(open_clip, source)
    except ClipforgeError:  # already one line (a tokenizer that cannot be downloaded)
        raise
    except (RuntimeError, KeyError, ValueError, OSError, AssertionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(f"cannot load open_clip model {source.path}: {type(exc).__name__}: {first}") from exc
    cfg = dict(getattr(model.visual, "preprocess_cfg", None) or _default_preprocess(model))
    wrapped = wrap_model(model.float().eval())
    image = image_spec_from_cfg(cfg)
    return LoadedOpenClip(wrapped, _tokenizer(tokenizer, arch), OpenClipProcessor(image, open_clip, cfg), image, arch)


def _tokenizer(tokenizer, arch: str):
    """open_clip's tokenizer behind HF's call convention: its CLIP BPE, or its ``HFTokenizer``."""
    if is_hf_tokenizer(tokenizer):
        return OpenClipHFTokenizer(tokenizer)
    if not _is_simple_tokenizer(tokenizer):
        raise UnsupportedModelError(
            f"not supported yet: {arch}, its text encoder uses a {type(tokenizer).__name__} "
            "(open_clip's CLIP BPE tokenizer and its HFTokenizer are reproduced without torch)"
        )
    return OpenClipTokenizer(tokenizer)


def wrap_model(model):
    return _wrap(model)


def _wrap(model):
    """The open_clip model with the two calls the rest of clipforge makes on a PyTorch model
    (``get_image_features(pixel_values=)``, ``get_text_features(input_ids=)``) and its logit parameters."""
    import torch

    class OpenClipModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model.eval()
            self.logit_scale = model.logit_scale
            self.logit_bias = getattr(model, "logit_bias", None)

        def get_image_features(self, pixel_values, **_):
            return self.inner.encode_image(pixel_values)

        def get_text_features(self, input_ids, attention_mask=None):
            return self.inner.encode_text(input_ids)

    return OpenClipModel().eval()


def image_spec_from_cfg(cfg: dict) -> ImageSpec:
    """open_clip's ``preprocess_cfg`` (size, mean, std, interpolation, resize_mode, fill_color) as an ImageSpec."""
    size = cfg["size"]
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    mode = cfg.get("resize_mode", "shortest")
    if mode == "squash":
        resize, crop = "exact", None
    elif mode == "longest":
        resize, crop = "fit_longest", (h, w)
    elif mode == "shortest":
        resize, crop = ("shortest_edge", (h, w)) if h == w else ("fit_shortest", (h, w))
    else:
        raise UnsupportedModelError(f"not supported yet: open_clip resize_mode {mode!r}")
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in INTERPOLATION:
        raise UnsupportedModelError(f"not supported yet: open_clip interpolation {interpolation!r}")
    return ImageSpec(
        resize_mode=resize,
        size=(h, w),
        crop_size=crop,
        resample=INTERPOLATION[interpolation],
        rescale_factor=1 / 255,
        mean=tuple(float(m) for m in cfg["mean"]),
        std=tuple(float(s) for s in cfg["std"]),
        convention="torchvision",
        fill=int(cfg.get("fill_color", 0) or 0),
    )


def _create(open_clip, source: OpenClipSource):
    if source.is_folder:
        name = f"local-dir:{source.path}"
        model = open_clip.create_model(name, device="cpu")
        return model, _arch_of_folder(source.path), folder_tokenizer(open_clip, source.path)
    if source.arch:
        if source.arch not in open_clip.list_models():
            raise InputError(f"{source.arch!r} is not an open_clip architecture; see open_clip.list_models()")
        model = open_clip.create_model(source.arch, pretrained=str(source.path), device="cpu")
        return model, source.arch, open_clip.get_tokenizer(source.arch)
    model = open_clip.load_openai_model(str(source.path), precision="fp32", device="cpu")
    context = int(model.positional_embedding.shape[0])
    return model, "openai:" + source.path.stem, open_clip.SimpleTokenizer(context_length=context)


def _arch_of_folder(folder: Path) -> str:
    config = json.loads((folder / "open_clip_config.json").read_text())
    return str(config.get("model_cfg", {}).get("name") or config.get("architecture") or folder.name)


def _default_preprocess(model) -> dict:
    from open_clip.transform import PreprocessCfg

    size = getattr(model.visual, "image_size", 224)
    return {
        **PreprocessCfg().__dict__,
        "size": size if isinstance(size, int) else tuple(size),
        "mean": getattr(model.visual, "image_mean", PreprocessCfg().mean),
        "std": getattr(model.visual, "image_std", PreprocessCfg().std),
    }


def _is_simple_tokenizer(tokenizer) -> bool:
    return (
        type(tokenizer).__name__ == "SimpleTokenizer"
        and getattr(tokenizer, "reduction_fn", None) is None
        and getattr(getattr(tokenizer, "clean_fn", None), "__name__", "") == "_clean_lower"
    )


# --- tokenizer -----------------------------------------------------------------------------------------------
class OpenClipTokenizer:
    """open_clip's ``SimpleTokenizer`` called like a HF tokenizer (``export.cases.tokenize``), and the
    ``tokenizer.json`` the torch-free runtime reads (``backend_tokenizer``)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.context_length = int(tokenizer.context_length)
        self.bos_token_id, self.eos_token_id, self.pad_token_id = tokenizer.sot_token_id, tokenizer.eot_token_id, 0

    def lengths(self, texts: list[str], limit: int) -> list[int]:
        return [min(len(self.tok.encode(t)) + 2, limit) for t in texts]

    def __call__(self, texts, truncation=True, return_tensors="np", padding=True, max_length=None, **_):
        texts = [texts] if isinstance(texts, str) else list(texts)
        fixed = padding == "max_length"
        limit = (max_length or self.context_length) if fixed else self.context_length
        ids = self.tok(texts, context_length=limit).numpy().astype(np.int64)
        lengths = self.lengths(texts, limit)
        if not fixed:
            ids = ids[:, : max(lengths, default=1)]
        mask = (np.arange(ids.shape[1])[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
        return {"input_ids": ids, "attention_mask": mask}

    def save_pretrained(self, folder) -> None:
        """Nothing besides tokenizer.json (written from ``backend_tokenizer``): open_clip keeps no other files."""

    @property
    def backend_tokenizer(self):
        return runtime_tokenizer(self.tok)


def runtime_tokenizer(simple_tokenizer):
    """open_clip's vocabulary and merges as a ``tokenizers`` BPE (byte-level, ``</w>`` word ends, no normaliser:
    ``runtime.text`` cleans and splits texts as open_clip does, then hands it the words)."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    ranks = sorted(simple_tokenizer.bpe_ranks.items(), key=lambda item: item[1])
    model = BPE(
        vocab=dict(simple_tokenizer.encoder),
        merges=[pair for pair, _ in ranks],
        continuing_subword_prefix="",
        end_of_word_suffix="</w>",
    )
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [simple_tokenizer.decoder[i] for i in simple_tokenizer.all_special_ids]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for token in specials:
        if tokenizer.token_to_id(token) != simple_tokenizer.encoder[token]:
            raise UnsupportedModelError(f"not supported yet: special token {token!r} moved in tokenizer.json")
    return tokenizer


# --- image processor -----------------------------------------------------------------------------------------
class OpenClipProcessor:
    """open_clip's eval transform (torchvision on PIL images) called like a HF image processor."""

    def __init__(self, image: ImageSpec, open_clip, cfg: dict):
        from open_clip.transform import PreprocessCfg, image_transform_v2

        known = {k: v for k, v in cfg.items() if k in PreprocessCfg.__dataclass_fields__}
        self.transform = image_transform_v2(PreprocessCfg(**known), is_train=False)
        self.image = image

    def __call__(self, images=None, return_tensors="np", **_):
        import torch

        pixels = torch.stack([self.transform(image) for image in images])
        return {"pixel_values": pixels if return_tensors == "pt" else pixels.numpy()}

    def save_pretrained(self, folder) -> None:
        """The manifest's ImageSpec is the pre-processing; open_clip keeps no processor file."""
