"""Run exported pipeline graphs from Python with clipforge's checks around them: one-line ``InputError``s instead
of onnxruntime tracebacks, and encoded images checked before they reach the decoder.

The in-graph guard already refuses bytes that are not a complete PNG or JPEG. A JPEG can still be complete yet
corrupt inside, and onnxruntime-extensions' libjpeg error handler then ends the whole process (upstream issue
#1094); ``check_image_bytes`` therefore has Pillow decode a JPEG first, and the graph only ever sees files Pillow
could read.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipforge.errors import InputError
from clipforge.pipeline._formats import JPEG_END, JPEG_START, PNG_SIGNATURE, SUFFIXES
from clipforge.pipeline._graph import extensions_session
from clipforge.runtime import scoring
from clipforge.runtime.images import load_image
from clipforge.runtime.labels import DEFAULT_TEMPLATE, LabelCache, check_labels, check_templates


def check_image_bytes(data: bytes, name: str = "image") -> None:
    """Raise ``InputError`` unless ``data`` is a PNG, or a complete JPEG that Pillow decodes."""
    head, tail = list(data[:8]), list(data[-2:])
    if head == PNG_SIGNATURE:
        return
    if head[:3] != JPEG_START:
        raise InputError(
            f"{name} is not a PNG or JPEG file (it starts with {bytes(data[:8])!r}); the pipeline "
            "graph decodes only those two formats, so convert it first"
        )
    if tail != JPEG_END:
        raise InputError(f"{name} is a truncated JPEG (no end-of-image marker); replace it")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on corrupt data
        raise InputError(f"{name} is a corrupt JPEG ({exc}); replace it") from exc
    if mode not in ("L", "RGB"):
        raise InputError(
            f"{name} is a {mode} JPEG; the pipeline graph decodes grey and RGB JPEGs only, so convert it to RGB first"
        )


def exif_rotated(data: bytes) -> bool:
    """True when ``data`` carries an EXIF orientation other than 1 (upright)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.getexif().get(0x0112, 1) not in (0, 1)  # 0x0112: Orientation
    except Exception:  # unreadable EXIF: leave the bytes to the graph
        return False


class PipelineModel:
    """``PREFIX_img.onnx`` / ``PREFIX_img_hwc.onnx`` / ``PREFIX_txt.onnx`` as Python calls."""

    def __init__(self, paths: dict[str, Path], threads: int | None = None):

        missing = [str(p) for p in paths.values() if not Path(p).is_file()]
        if missing:
            raise InputError(f"pipeline graph(s) {', '.join(missing)} do not exist; run 'clipforge export-pipeline'")
        self.paths = {k: Path(p) for k, p in paths.items()}
        self._sessions = {k: extensions_session(p, threads, quiet=True) for k, p in self.paths.items()}
        self._labels = LabelCache()  # class embeddings per label + templates, as ZeroShotModel keeps them

    @classmethod
    def from_prefix(cls, prefix: str | Path, threads: int | None = None) -> PipelineModel:

        prefix = Path(prefix)
        paths = {k: prefix.with_name(prefix.name + s) for k, s in SUFFIXES.items()}
        found = {k: p for k, p in paths.items() if p.is_file()}
        if not found:
            raise InputError(
                f"no pipeline graphs at {prefix}_img.onnx / {prefix}_txt.onnx; "
                "run 'clipforge export-pipeline MODEL -o PREFIX'"
            )
        return cls(found, threads)

    def _session(self, kind: str):
        if kind not in self._sessions:
            raise InputError(f"this pipeline has no {kind} graph (found: {', '.join(self._sessions)})")
        return self._sessions[kind]

    def _run(self, kind: str, feed: dict, what: str) -> np.ndarray:
        try:
            return self._session(kind).run(None, feed)[0]
        except Exception as exc:  # onnxruntime's own exception types
            message = str(exc).split("Status Message:")[-1].strip().splitlines()[0]
            raise InputError(f"{what}: the pipeline graph refused it ({message})") from exc

    def embed_image(self, image: bytes | str | Path) -> np.ndarray:
        """Encoded image bytes or a PNG/JPEG path -> embedding [1, D]. A photo whose EXIF orientation says it is
        rotated (the graph's decoder ignores EXIF) is decoded and turned upright here, then fed to the HWC-pixels
        graph, as the Python runtime and HF's ``load_image`` would see it."""
        name = str(image) if isinstance(image, (str, Path)) else f"<{len(image)} bytes>"
        if isinstance(image, (str, Path)):
            if not Path(image).is_file():
                raise InputError(f"image {image} does not exist; check the path")
            image = Path(image).read_bytes()
        data = bytes(image)
        check_image_bytes(data, name)
        if "image_pixels" in self._sessions and exif_rotated(data):
            return self.embed_pixels(np.asarray(load_image(data)))
        return self._run("image", {"image": np.frombuffer(data, np.uint8)}, name)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded uint8 pixels [height, width, 1 or 3] -> embedding [1, D]."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
            raise InputError(f"pixels must be uint8 [height, width, 1 or 3], got {pixels.dtype} {pixels.shape}")
        return self._run("image_pixels", {"pixels": np.ascontiguousarray(pixels)}, "pixels")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> embeddings [N, D]."""
        if isinstance(texts, str):
            raise InputError("pass a list of texts, not a single string")
        texts = list(texts)
        if not texts:
            raise InputError("the text list is empty; pass at least one text")
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise InputError(f"texts must be strings, got {bad[0]}")
        return self._run("text", {"text": np.array(texts, dtype=object)}, f"{len(texts)} text(s)")

    def classify(
        self,
        image: bytes | str | Path,
        labels: Sequence[str],
        template: str | Sequence[str] = DEFAULT_TEMPLATE,
        top_k: int = 5,
    ) -> list[dict]:
        """One image against ``labels`` (template ensembles averaged, cached): ``[{"label", "score"}]``, best
        first, scored with the logit scale (and SigLIP's bias) stored in the text graph's metadata."""
        from functools import partial

        labels, templates = check_labels(labels), check_templates(template)
        text = self._labels.get(labels, templates, partial(scoring.class_embeddings, self.embed_texts))
        scale, bias = self._logit_parameters()
        probs = scoring.probabilities(scoring.logits(self.embed_image(image), text, scale, bias), bias is not None)
        return scoring.top_k(probs[0], labels, top_k)

    def _logit_parameters(self) -> tuple[float, float | None]:
        import json

        meta = self._session("text").get_modelmeta().custom_metadata_map
        return float(json.loads(meta["logit_scale"])), json.loads(meta["logit_bias"])
