"""``min_score="auto"``: the score above which a hit counts as a match, learnt from this library and this model.

A generic vocabulary (``clipforge.zeroshot.vocabulary``: people, animals, things, places, colours, shapes) is
searched in the library; each caption's best score is noted. Captions whose subject the library holds score like
a match, the others like the partial resemblances every library offers, so the best scores fall in two groups.
The cutoff is the split between them that leaves the two groups tightest (two-means on one dimension, as Otsu's
threshold): a query whose hits all score below it finds nothing that stands out here, and gets "no match".

Calibrated per model (the scores of its own text encoder) and per library (its own images), never a constant;
computed once per index and image count (``Relevance`` caches it). Chosen by measurement against per-query
z-scores, a gap statistic and a caption competition: ``benchmarks/bench_relevance.py`` prints them side by side.
The cutoff judges text queries; a query with example images or negative texts is cut at the same score."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

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

    def reason(self, best: float | None = None) -> str:
        """Why a search found nothing: one line (``best``: the best score the query reached, if known)."""
        reached = f"best score {best:.3f}, " if best is not None else ""
        return (
            f"no match: nothing in this library stands out for this query ({reached}auto cutoff {self.cutoff:.3f}, "
            f"learnt from {self.images} images)"
        )


def parse_min_score(value) -> MinScore:
    """User input (a CLI flag, an API field) as a ``min_score``: None, a finite number, or ``"auto"``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
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
) -> Calibration:
    """The cutoff for a library of ``images`` images: ``embed_texts`` embeds the vocabulary's ``captions``
    (normalised rows), ``best_score(vector)`` is the library's best score for one of them (None when empty)."""
    texts = list(captions if captions is not None else vocabulary_captions())
    vectors = embed_texts(texts)
    best = [s for s in (best_score(v) for v in vectors) if s is not None]
    cutoff, low, high = split_scores(best)
    return Calibration(cutoff, low, high, images, len(texts))


class Relevance:
    """The auto cutoff of one index, computed on first use and again when its image count changes."""

    def __init__(self, captions: Sequence[str] | None = None):
        self.captions = list(captions) if captions is not None else None
        self._lock = threading.Lock()
        self._cached: Calibration | None = None

    def calibration(self, embed_texts, best_score, images: int) -> Calibration:
        with self._lock:
            if self._cached is None or self._cached.images != images:
                self._cached = calibrate(embed_texts, best_score, images, self.captions)
            return self._cached
