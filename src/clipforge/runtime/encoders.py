"""One encoder session with its shape rules: static batches are chunked and padded, static text lengths are
padded or truncated (keeping the end-of-text token) before the run."""

from __future__ import annotations

import numpy as np

from clipforge.specs import TextSpec


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class Encoder:
    """Runs an image or text encoder session on any batch size. ``session`` is a session, or a zero-argument
    callable that opens one on first use (a lazy encoder: its shape attributes open it when first read);
    ``name`` says which encoder it is (``image-encoder`` or ``text-encoder``)."""

    def __init__(self, session, name: str, max_batch: int = 64):
        self.name, self._max_batch, self.on_open = name, max_batch, None
        lazy = callable(session) and not hasattr(session, "run")
        self._opener, self._session = (session, None) if lazy else (None, session)
        if not lazy:
            self._describe(session)

    @property
    def opened(self) -> bool:
        return self._session is not None

    @property
    def session(self):
        if self._session is None:
            self._session = self._opener()
            self._describe(self._session)
            if self.on_open:
                self.on_open()
        return self._session

    def __getattr__(self, name: str):
        """Shape attributes of a lazy encoder not opened yet: open it, then read them."""
        if name.startswith("_") or name in ("on_open", "name") or self.__dict__.get("_session") is not None:
            raise AttributeError(name)
        self.session  # noqa: B018 -- the property opens the session
        return getattr(self, name)

    def _describe(self, session) -> None:
        max_batch = self._max_batch
        first = session.get_inputs()[0]
        self.input_names = [i.name for i in session.get_inputs()]
        self.static_batch = _static(first.shape[0])
        self.static_length = _static(first.shape[1]) if self.name == "text-encoder" else None
        self.embed_dim = _static(session.get_outputs()[0].shape[-1])
        self.max_batch = self.static_batch or max_batch

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: feed[name] for name in self.input_names}
        n = len(next(iter(feed.values())))
        outs = [
            self._run_chunk({k: v[i : i + self.max_batch] for k, v in feed.items()})
            for i in range(0, n, self.max_batch)
        ]
        return np.concatenate(outs) if outs else np.zeros((0, self.embed_dim or 0), np.float32)

    def _run_chunk(self, chunk: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(chunk.values())))
        if self.static_batch and n < self.static_batch:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], self.static_batch - n, axis=0)]) for k, v in chunk.items()}
        return self.session.run(None, chunk)[0][:n]


def fit_length(ids: np.ndarray, mask: np.ndarray, length: int, spec: TextSpec) -> tuple[np.ndarray, np.ndarray]:
    """Pad (with the pad id, mask 0) or truncate (ending in EOS where the text had one) to ``length``."""
    n, current = ids.shape
    if current < length:
        pad = np.full((n, length - current), spec.pad_id, dtype=ids.dtype)
        return np.concatenate([ids, pad], axis=1), np.concatenate([mask, np.zeros_like(pad)], axis=1)
    if current == length:
        return ids, mask
    cut_ids, cut_mask = ids[:, :length].copy(), mask[:, :length].copy()
    lost_eos = (mask[:, length:].sum(axis=1) > 0) & (ids[:, length:] == spec.eos_id).any(axis=1)
    cut_ids[lost_eos, -1] = spec.eos_id
    return cut_ids, cut_mask
