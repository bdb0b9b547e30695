"""``ZeroShotModel``: the two encoders as one model. Drop-in for HF's CLIP/SigLIP in the zero-shot pipeline,
plus a fast path (``classify``, ``embed_images``, ``embed_texts``, ``similarity``). torch-free."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipforge.errors import InputError, TextMaskWarning
from clipforge.runtime import scoring
from clipforge.runtime.backends import resolve
from clipforge.runtime.cpu import cpu_model, int8_saturates, missing_for
from clipforge.runtime.encoders import Encoder, fit_length
from clipforge.runtime.hf_compat import HFCompatMixin
from clipforge.runtime.images import load_image, preprocess
from clipforge.runtime.labels import DEFAULT_TEMPLATE, LabelCache, check_labels, check_templates
from clipforge.runtime.loading import LoadOptions, manifest_folder, role_paths
from clipforge.runtime.outputs import ZeroShotOutput, is_torch, to_numpy
from clipforge.runtime.patches import Patches, with_max_patches
from clipforge.runtime.saving import save_folder
from clipforge.runtime.scoring import l2_normalize
from clipforge.runtime.sessions import SessionConfig, make_session
from clipforge.runtime.text import TextTokenizer
from clipforge.specs import IMAGE_ROLE, TEXT_ROLE, Manifest


class ZeroShotModel(HFCompatMixin):
    """Image encoder + text encoder + manifest: zero-shot classification and embeddings."""

    def __init__(
        self,
        manifest: Manifest,
        encoders: dict[str, Encoder],
        folder: Path,
        hf_config: Any = None,
        paths: dict[str, Path] | None = None,
    ):
        self.manifest, self.folder = manifest, Path(folder)
        self.paths = paths or {encoder: self.folder / p for encoder, p in manifest.encoders.items()}
        self.image_encoder, self.text_encoder = encoders[IMAGE_ROLE], encoders[TEXT_ROLE]
        self._hf_config = hf_config
        self._tokenizer = None
        self._labels = LabelCache()
        self._mask_warned = False
        for encoder in encoders.values():
            encoder.on_open = self._check_dims  # a lazy encoder is checked when it opens
        self._check_dims()

    # --- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_onnx(
        cls, paths, manifest: str | Path | Manifest | None = None, *, skip_build: bool = True, **kwargs
    ) -> ZeroShotModel:
        """``paths``: an exported/built folder, or ``{"image-encoder": path, "text-encoder": path}``; the
        manifest is found beside the encoders unless given (a path or a ``Manifest``). Keywords: those of
        ``LoadOptions`` (task, hf_config, device, threads, spinning, backend, precision, lazy, arena); the graphs
        are used as built (``skip_build=True``, the winml ``from_onnx`` spelling; building is ``from_pretrained``'s
        or ``clipforge build``'s job).
        ``backend``: "onnxruntime", "openvino", or "auto" (what the build recorded; onnxruntime for plain
        exports). ``precision="bf16"``: OpenVINO runs the graph's float parts in bf16 (CPUs with AVX512-BF16/AMX;
        an int8 graph's quantised MatMuls stay int8). ``lazy``: open each encoder's session on first use (an
        image-only job never loads the text encoder)."""
        options, _ = LoadOptions.split(kwargs, "from_onnx")
        if skip_build is not True:
            raise InputError(
                "from_onnx loads built graphs as they are (skip_build=True); to build from a "
                "checkpoint use ZeroShotModel.from_pretrained or 'clipforge build'"
            )
        resolved = role_paths(paths)
        folder = manifest_folder(paths, manifest)
        manifest = manifest if isinstance(manifest, Manifest) else Manifest.load(folder)
        encoders = {}
        for encoder, path in resolved.items():
            opener = functools.partial(make_session, path, _session_config(manifest, encoder, options))
            encoders[encoder] = Encoder(opener if options.lazy else opener(), encoder)
        warn_if_cpu_lacks(manifest)
        manifest.image = with_max_patches(manifest.image, options.max_patches)  # this load's budget (NaFlex)
        return cls(manifest, encoders, folder, options.hf_config, paths=resolved)

    def save_pretrained(self, folder: str | Path, force: bool = False) -> Path:
        """Write this model as an exported folder (both encoders, manifest, tokenizer and processor files) that
        ``from_onnx``/``from_pretrained`` load; written in a temporary folder renamed at the end."""

        return save_folder(self, Path(folder), force)

    @property
    def backends(self) -> dict[str, str]:
        """encoder -> "backend/precision" the encoders run with."""

        def name(session) -> str:
            precision = getattr(session, "precision", None)  # only OpenVINO sessions carry one
            return f"openvino/{precision}" if precision else "onnxruntime/fp32"

        return {IMAGE_ROLE: name(self.image_encoder.session), TEXT_ROLE: name(self.text_encoder.session)}

    def _check_dims(self) -> None:
        dims = {"manifest": self.manifest.embed_dim}
        dims.update(
            {
                encoder: enc.embed_dim
                for encoder, enc in ((IMAGE_ROLE, self.image_encoder), (TEXT_ROLE, self.text_encoder))
                if enc.opened
            }
        )
        if len({d for d in dims.values() if d}) > 1:
            raise InputError(f"encoders come from different models: embedding dims {dims}; export them together")

    # --- tokenizer and pre-processing ---------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = TextTokenizer.from_folder(self.folder, self.manifest.text)
        return self._tokenizer

    def image_spec(self, max_patches: int | None = None):
        """The pre-processing images get: the manifest's, at another patch budget when ``max_patches`` is given
        (NaFlex models only; any other model refuses it in one line)."""
        return with_max_patches(self.manifest.image, max_patches)

    def preprocess(self, images: Sequence, max_patches: int | None = None) -> np.ndarray | Patches:
        """``pixel_values`` [N, 3, H, W], or for a NaFlex model a ``Patches`` batch at ``max_patches`` (default:
        the budget the model was loaded with)."""
        return preprocess([load_image(i) for i in images], self.image_spec(max_patches))

    # --- raw encoders ----------------------------------------------------------------------------------
    def encode_pixels(self, pixel_values) -> np.ndarray:
        """``pixel_values`` (array or tensor), or a NaFlex ``Patches`` batch -> image embeddings."""
        if isinstance(pixel_values, Patches):
            return self.image_encoder(pixel_values.feed())
        return self.image_encoder({"pixel_values": to_numpy(pixel_values, np.float32)})

    def encode_tokens(self, input_ids, attention_mask=None) -> np.ndarray:
        ids = to_numpy(input_ids, np.int64)
        mask = np.ones_like(ids) if attention_mask is None else to_numpy(attention_mask, np.int64)
        length = self.text_encoder.static_length or (
            self.manifest.text.context_length if self.manifest.text.padding == "max_length" else None
        )
        if length:
            ids, mask = fit_length(ids, mask, length, self.manifest.text)
        return self.text_encoder({"input_ids": ids, "attention_mask": mask})

    # --- fast path -------------------------------------------------------------------------------------
    def embed_images(
        self, images: Sequence, batch_size: int = 32, normalize: bool = True, max_patches: int | None = None
    ) -> np.ndarray:
        """Images (PIL, paths or encoded bytes) -> embeddings [N, D]. The next batch is decoded and
        pre-processed in a helper thread (Pillow releases the GIL) while the encoder runs on the current one.
        ``max_patches``: a NaFlex model's patch budget for these images (default: the loaded one)."""
        from concurrent.futures import ThreadPoolExecutor

        self.image_spec(max_patches)  # refused before any image is read
        starts = range(0, len(images), batch_size)
        chunks = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = [pool.submit(self.preprocess, images[i : i + batch_size], max_patches) for i in starts[:1]]
            for k, _ in enumerate(starts):
                pixels = pending[k].result()
                if k + 1 < len(starts):
                    nxt = starts[k + 1]
                    pending.append(pool.submit(self.preprocess, images[nxt : nxt + batch_size], max_patches))
                chunks.append(self.encode_pixels(pixels))
        out = np.concatenate(chunks) if chunks else np.zeros((0, self.manifest.embed_dim), np.float32)
        return l2_normalize(out) if normalize else out

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256, normalize: bool = True) -> np.ndarray:
        """Texts -> embeddings [N, D]; over-long texts are truncated with a warning."""
        chunks = []
        for i in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode(list(texts[i : i + batch_size]))
            _warn_truncated(texts[i : i + batch_size], encoded.truncated, self.manifest.text.context_length)
            chunks.append(self.encode_tokens(encoded.input_ids, encoded.attention_mask))
        out = np.concatenate(chunks) if chunks else np.zeros((0, self.manifest.embed_dim), np.float32)
        return l2_normalize(out) if normalize else out

    def label_embeddings(self, labels: Sequence[str], template: str | Sequence[str] = DEFAULT_TEMPLATE) -> np.ndarray:
        """Normalised class embeddings [L, D], averaged over a template ensemble; cached per label+templates."""
        labels, templates = check_labels(labels), check_templates(template)
        return self._labels.get(labels, templates, self._embed_prompts)

    def _embed_prompts(self, labels: list[str], templates: list[str]) -> np.ndarray:
        return scoring.class_embeddings(self.embed_texts, labels, templates)

    def logits(self, image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
        """[images, texts] logits from normalised embeddings: scaled cosine (+ bias for SigLIP)."""
        return scoring.logits(image_embeds, text_embeds, self.manifest.logit_scale, self.manifest.logit_bias)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities: softmax over labels (CLIP) or independent sigmoids (SigLIP)."""
        return scoring.probabilities(logits, sigmoid=self.manifest.logit_bias is not None)

    def similarity(self, images: Sequence, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity [images, texts]; either side may also be a precomputed embedding array."""
        img = images if isinstance(images, np.ndarray) else self.embed_images(images)
        txt = texts if isinstance(texts, np.ndarray) else self.embed_texts(texts)
        return l2_normalize(img) @ l2_normalize(txt).T

    def classify(
        self,
        images: Sequence,
        labels: Sequence[str],
        template: str | Sequence[str] = DEFAULT_TEMPLATE,
        top_k: int = 5,
        batch_size: int = 32,
        max_patches: int | None = None,
    ) -> list[list[dict]]:
        """Per image, the ``top_k`` labels as ``[{"label", "score"}]``, best first (HF pipeline's format);
        ``max_patches``: a NaFlex model's patch budget for these images."""
        self.image_spec(max_patches)
        text = self.label_embeddings(labels, template)
        probs = self.scores(self.logits(self.embed_images(images, batch_size, max_patches=max_patches), text))
        return [scoring.top_k(row, list(labels), top_k) for row in probs]

    # --- HF drop-in ------------------------------------------------------------------------------------
    def __call__(
        self,
        input_ids=None,
        pixel_values=None,
        attention_mask=None,
        return_dict=True,
        pixel_attention_mask=None,
        spatial_shapes=None,
        **_ignored,
    ):
        self._check_text_mask(attention_mask)
        torch_in = is_torch(pixel_values) or is_torch(input_ids)
        if spatial_shapes is not None:  # SigLIP 2 NaFlex inputs, as Siglip2ImageProcessor returns them
            pixel_values = Patches(
                to_numpy(pixel_values, np.float32),
                to_numpy(pixel_attention_mask, np.int64),
                to_numpy(spatial_shapes, np.int64),
            )
        image = l2_normalize(self.encode_pixels(pixel_values)) if pixel_values is not None else None
        text = l2_normalize(self.encode_tokens(input_ids, attention_mask)) if input_ids is not None else None
        out = ZeroShotOutput(text_embeds=text, image_embeds=image)
        if image is not None and text is not None:
            out.logits_per_image = self.logits(image, text).astype(np.float32)
            out.logits_per_text = out.logits_per_image.T.copy()
        out = out.as_torch() if torch_in else out
        return out if return_dict else out.to_tuple()

    def _check_text_mask(self, attention_mask) -> None:
        """Warn once when a SigLIP export without a text mask is given one that masks padding (transformers 5)."""
        text = self.manifest.text
        if (
            attention_mask is None
            or self._mask_warned
            or self.manifest.family not in ("siglip", "siglip2")
            or text.uses_attention_mask
            or to_numpy(attention_mask, np.int64).all()
        ):
            return
        self._mask_warned = True
        warnings.warn(SIGLIP_MASK_WARNING, TextMaskWarning, stacklevel=3)


SIGLIP_MASK_WARNING = (
    "this SigLIP export ignores the attention_mask it was given and attends to the padding as SigLIP was trained "
    "(like open_clip, big_vision and transformers 4), so its scores differ from transformers 5's SiglipModel, "
    "which masks the padding; to match transformers 5 instead, re-export with text_attention_mask=True "
    "('clipforge export --text-attention-mask')"
)


def _session_config(manifest: Manifest, encoder: str, options: LoadOptions) -> SessionConfig:

    chosen, precision = resolve(options.backend, manifest.build.get("runtime", {}).get(encoder), options.precision)
    return SessionConfig(
        device=options.device,
        threads=options.threads,
        spinning=options.spinning,
        backend=chosen,
        precision=precision,
        arena=options.arena,
    )


def warn_if_cpu_lacks(manifest: Manifest) -> None:
    """A build chosen on another machine may rely on matrix engines (AMX, VNNI, bf16) this CPU lacks."""

    runtime = manifest.build.get("runtime", {})
    recorded = manifest.build.get("cpu", {})
    missing = {f for info in runtime.values() for f in missing_for(info.get("precision", ""))}
    missing |= set(missing_for("", recorded.get("relied_on")))
    if missing:
        warnings.warn(
            f"this build was chosen on {recorded.get('model', 'another CPU')} and relies on "
            f"{', '.join(sorted(missing))}, which this CPU ({cpu_model()}) lacks: expect it to run "
            "slower than measured; rebuild here with quantize='auto' (clipforge build --quantize auto)",
            stacklevel=3,
        )
    full_range = [role for role, info in manifest.build.get("roles", {}).items() if _full_range_int8(info)]
    if full_range and int8_saturates():
        warnings.warn(
            f"this build's int8 weights ({', '.join(full_range)}) use the full 8-bit range, which onnxruntime's int8 "
            f"kernels saturate on this CPU ({cpu_model()}: no VNNI or AMX): expect lower accuracy than its build "
            "measured; rebuild it on this machine, or with quantize.reduce_range = true",
            stacklevel=3,
        )


def _full_range_int8(role: dict) -> bool:
    """A role quantised to int8 with 8-bit weights (builds before ``reduce_range`` was recorded count as such)."""
    stages = [s for s in role.get("stages", []) if str(s.get("stage", "")).startswith("quantize:int8")]
    return bool(stages) and not any(s.get("reduce_range") for s in stages)


def _warn_truncated(texts, truncated, limit: int) -> None:
    cut = [t for t, flag in zip(texts, truncated) if flag]
    if cut:
        warnings.warn(
            f"{len(cut)} text(s) longer than {limit} tokens were truncated, e.g. {cut[0][:40]!r}", stacklevel=3
        )
