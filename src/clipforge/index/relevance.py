"""``min_score="auto"``: the score above which a hit counts as a match, learnt from this library and this model.

A generic vocabulary (``clipforge.zeroshot.vocabulary``: people, animals, things, places, colours, shapes) is
searched in the library; each caption's best score is noted. Captions whose subject the library holds score like
a match, the others like the partial resemblances every library offers, so the best scores fall in two groups.
The cutoff is the split between them that leaves the two groups tightest (two-means on one dimension, as Otsu's
threshold): a query whose hits all score below it finds nothing that stands out here, and gets "no match".

Calibrated per model (the scores of its own text encoder) and per library (its own images), never a constant;
computed once per index and image count (``Relevance`` caches it, in memory and in ``$CLIPFORGE_CACHE/relevance/``,
with the vocabulary's embeddings, once per model). A library whose images were replaced one for one keeps its
cutoff until its image count changes. Chosen by measurement against per-query
z-scores, a gap statistic and a caption competition: ``benchmarks/bench_relevance.py`` prints them side by side.
The cutoff judges text queries. A query with negative texts is judged on its texts alone (no match when they
find nothing; otherwise its hits, moved away from the negatives, are kept: subtracting lowers every score, and
captions moved the same way were measured to cut present matches); a query with an example image is a similarity
search, and ``auto`` keeps its hits (the vocabulary says nothing about image-to-image scores)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from clipforge._io import cache_root
from clipforge.errors import InputError
from clipforge.zeroshot.vocabulary import captions as vocabulary_captions

AUTO = "auto"
MinScore = float | str | None  # a cosine, "auto", or None (keep every hit)


@dataclass(frozen=True)
class Calibration:
    """The auto cutoff of one library: ``cutoff`` splits the vocabulary's best scores (``low`` and ``high``: the
    medians of the groups below and above it), measured on ``images`` images with ``captions`` captions."""

    cutoff: float
    low: float
    high: float
    images: int
    captions: int

    def reason(self) -> str:
        """Why a search cut at this cutoff found nothing: one line."""
        return no_match(self.cutoff, self.images)


def no_match(cutoff: float | None = None, images: int | None = None) -> str:
    """The one line that says a ``min_score="auto"`` search found nothing (with the cutoff, when known)."""
    learnt = f", learnt from {images} images" if images is not None else ""
    at = f" (auto cutoff {cutoff:.3f}{learnt})" if cutoff is not None else ""
    return f"no match: nothing in this library stands out for this query{at}"


def parse_min_score(value) -> MinScore:
    """User input (a CLI flag, an API field) as a ``min_score``: None, a finite number, or ``"auto"``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InputError("min_score= is empty; pass a cosine (-1 to 1) or auto")
        if text.lower() == AUTO:
            return AUTO
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"min_score={text[:40]!r} is neither a number nor 'auto'; pass a cosine or auto") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"min_score={str(value)[:40]!r} is not a finite number; pass a cosine (-1 to 1) or auto")
    return float(value)


def split_scores(best: Sequence[float]) -> tuple[float, float, float]:
    """(cutoff, low, high): the split of ``best`` into two groups with the least spread within them (the most
    between them), the cutoff halfway between the groups' nearest members, and each group's median."""
    values = np.sort(np.asarray(best, np.float64))
    if len(values) < 2 or values[0] == values[-1]:
        top = float(values[-1]) if len(values) else 1.0
        return top, top, top
    n = len(values)
    sizes = np.arange(1, n)
    below = np.cumsum(values)[:-1] / sizes
    above = (values.sum() - np.cumsum(values)[:-1]) / (n - sizes)
    i = int(np.argmax(sizes * (n - sizes) * (above - below) ** 2)) + 1
    cutoff = (values[i - 1] + values[i]) / 2
    return float(cutoff), float(np.median(values[:i])), float(np.median(values[i:]))


def calibrate(
    embed_texts: Callable[[list[str]], np.ndarray],
    best_score: Callable[[np.ndarray], float | None],
    images: int,
    captions: Sequence[str] | None = None,
    model_key: str | None = None,
) -> Calibration:
    """The cutoff for a library of ``images`` images: ``embed_texts`` embeds the vocabulary's ``captions``
    (normalised rows; cached on disk under ``model_key``, the model's manifest digest, when given),
    ``best_score(vector)`` is the library's best score for one of them (None when the library is empty)."""
    texts = list(captions if captions is not None else vocabulary_captions())
    vectors = vocabulary_embeddings(embed_texts, texts, model_key)
    best = [s for s in (best_score(v) for v in vectors) if s is not None]
    cutoff, low, high = split_scores(best)
    return Calibration(cutoff, low, high, images, len(texts))


def model_key(folder, manifest_sha256: str) -> str | None:
    """What the cached vocabulary embeddings of a model folder are keyed by: its manifest digest and the size and
    mtime of its text encoder's files (a folder rebuilt in place gets new ones); None when unknown."""
    if not manifest_sha256 or manifest_sha256 == "unknown":
        return None
    files = sorted((Path(folder) / "text-encoder").rglob("*")) if folder is not None else []
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()]
    return hashlib.sha256(json.dumps([manifest_sha256, stats]).encode()).hexdigest()


def vocabulary_embeddings(embed_texts, texts: list[str], model_key: str | None) -> np.ndarray:
    """``embed_texts(texts)``, read from the cache when this model embedded these texts before (a text encoder
    takes seconds for them on a CPU: about 20 s for a ViT-B/32 here); a cache that cannot be written is skipped."""
    if not model_key:
        return np.asarray(embed_texts(texts), np.float32)
    path = _cache_file(f"{model_key[:16]}-{_digest(texts)}.npy")
    try:
        cached = np.load(path)
        if cached.ndim == 2 and cached.shape[0] == len(texts):
            return cached
    except (OSError, ValueError):
        pass
    vectors = np.asarray(embed_texts(texts), np.float32)
    _write(path, lambda f: np.save(f, vectors))
    return vectors


class Relevance:
    """The auto cutoff of one index, computed on first use and again when its image count changes; kept in
    memory and, when the model and the database (``library``: where it is) are known, in the cache folder, so
    a fresh process does not search the vocabulary again (213 searches: about 4 s at 100k images here)."""

    def __init__(self, captions: Sequence[str] | None = None, model_key: str | None = None, library: str = ""):
        self.captions = list(captions) if captions is not None else None
        self.model_key = model_key
        texts = self.captions if self.captions is not None else vocabulary_captions()
        self._file = _cache_file(f"{_digest([model_key, library, *texts])}.json") if model_key else None
        self._lock = threading.Lock()
        self._cached: Calibration | None = None

    def calibration(self, embed_texts, best_score, images: int) -> Calibration:
        with self._lock:
            if self._cached is None or self._cached.images != images:
                self._cached = self._stored(images) or calibrate(
                    embed_texts, best_score, images, self.captions, self.model_key
                )
                if self._file is not None:
                    _write(self._file, lambda f: f.write(json.dumps(asdict(self._cached)).encode()))
            return self._cached

    def _stored(self, images: int) -> Calibration | None:
        try:
            found = Calibration(**json.loads(self._file.read_text())) if self._file is not None else None
        except (OSError, ValueError, TypeError):
            return None
        return found if found is not None and found.images == images else None


def _digest(parts) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:16]


def _cache_file(name: str) -> Path:
    return cache_root() / "relevance" / name


def _write(path: Path, write) -> None:
    """``write(binary file)`` into a temporary sibling renamed to ``path``; skipped when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
            write(f)
        os.replace(f.name, path)
    except OSError:
        pass
