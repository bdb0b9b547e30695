"""Label and template checks, and the cache of class-text embeddings (computed once per label + templates)."""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import numpy as np

from clipforge.errors import InputError

DEFAULT_TEMPLATE = "This is a photo of {}."


def check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise InputError(f"labels must be a list of strings, got the single string {labels!r}")
    labels = list(labels)
    if not labels:
        raise InputError("the label list is empty; pass at least one label")
    empty = [i for i, label in enumerate(labels) if not str(label).strip()]
    if empty:
        raise InputError(f"label(s) at position {empty} are empty; remove them")
    seen, dupes = set(), []
    for label in labels:
        (dupes.append(label) if label in seen else seen.add(label))
    if dupes:
        raise InputError(f"duplicate label(s) {sorted(set(dupes))}; each label must appear once")
    return labels


def check_templates(template: str | Sequence[str]) -> list[str]:
    templates = [template] if isinstance(template, str) else list(template)
    if not templates:
        raise InputError("the template list is empty; pass at least one template such as 'a photo of a {}.'")
    for text in templates:
        problem = template_problem(text)
        if problem:
            raise InputError(f"template {str(text)[:100]!r} {problem}")
    return templates


def template_problem(template: str) -> str | None:
    """Templates are plain text with exactly one ``{}`` for the label (``{{`` and ``}}`` for literal braces):
    ``str.format`` would index (``{1}``) or read attributes (``{0.__class__}``) of anything else."""
    if not isinstance(template, str):
        return "is not a string"
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"has unbalanced braces ({exc}); write literal braces as '{{{{' and '}}}}'"
    if not fields:
        return "has no '{}' placeholder for the label, e.g. 'a photo of a {}.'"
    if len(fields) > 1 or fields[0] != ("", "", None):
        return "must have exactly one plain '{}' placeholder (no names, indexes, attributes or formats)"
    return None


class LabelCache:
    """Normalised label embeddings keyed by (templates, label); the model owning the cache is the third key."""

    def __init__(self, max_entries: int = 100_000):
        self._store: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
        self.max_entries = max_entries
        self.misses = 0

    def get(
        self, labels: list[str], templates: list[str], compute: Callable[[list[str], list[str]], np.ndarray]
    ) -> np.ndarray:
        key = tuple(templates)
        todo = [label for label in dict.fromkeys(labels) if (key, label) not in self._store]
        if todo:
            self.misses += len(todo)
            if len(self._store) + len(todo) > self.max_entries:
                self._store.clear()
            self._store.update({(key, label): e for label, e in zip(todo, compute(todo, templates))})
        return np.stack([self._store[(key, label)] for label in labels])
