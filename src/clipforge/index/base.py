"""What every index back-end offers (a small Protocol), what the index needs from a model (another), and the
records that cross them. torch-free."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from clipforge.errors import InputError
from clipforge.index.filters import SearchFilter
from clipforge.runtime.photo_info import PhotoInfo
from clipforge.specs import Manifest


@dataclass(frozen=True)
class Hit:
    """One search result: the image's row id, its path and its cosine similarity to the query."""

    id: int
    path: str
    score: float


class ModelSwitched(InputError):
    """The index's active vector set is no longer the one the query was embedded for (a model switch
    completed in between): the caller re-embeds with the new model, or reopens the index."""


@dataclass
class IndexSummary:
    """What one ``Index.add`` did. ``unreadable``: (path, reason) of every file that could not be read."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    unchanged: int = 0  # files whose size and mtime (or content sha256) matched the stored row
    switched: str | None = None  # "OLD -> NEW": this run completed a model switch

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["unreadable"] = [{"path": p, "reason": r} for p, r in self.unreadable]
        return out


@dataclass(frozen=True)
class Row:
    """One image row: ``embedding`` is float32 [D], L2-normalised; ``info`` the photo's metadata (None: not
    known, e.g. precomputed embeddings; the next ``index`` run fills it)."""

    path: str
    size: int
    mtime: float
    sha256: str
    embedding: np.ndarray
    info: PhotoInfo | None = None


@dataclass(frozen=True)
class Touch:
    """A file whose stat changed but whose content (sha256) did not: only size and mtime are updated."""

    path: str
    size: int
    mtime: float
    info: PhotoInfo | None = None  # read from the header: fills a row stored without metadata


@dataclass(frozen=True)
class Stored:
    size: int
    mtime: float
    sha256: str
    has_info: bool = True  # False: a row stored without photo metadata (before schema version 2, or upserted)


@dataclass(frozen=True)
class ModelRecord:
    """The model whose embeddings a database holds."""

    family: str
    source: str
    folder: str
    manifest_sha256: str
    embed_dim: int
    preprocessing: dict

    @classmethod
    def of(cls, model) -> ModelRecord:
        """The record of a ``ZeroShotModel`` (its exported/built folder and manifest)."""
        return cls.of_folder(model.folder, model.manifest)

    @classmethod
    def of_folder(cls, folder: str | Path, manifest: Manifest | None = None) -> ModelRecord:
        """The record of an exported/built model folder (``manifest``: its loaded manifest, read if None)."""
        file = Path(folder) / "manifest.json"
        manifest = manifest or Manifest.load(folder)
        digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "unknown"
        spec = asdict(manifest.image)
        return cls(
            manifest.family,
            manifest.source,
            str(Path(folder).resolve()),
            digest,
            int(manifest.embed_dim),
            json.loads(json.dumps(spec)),
        )

    def describe(self) -> str:
        return f"{self.family} {self.source} (manifest {self.manifest_sha256[:12]}, dim {self.embed_dim})"

    def same_model(self, other: ModelRecord) -> bool:
        return self.manifest_sha256 == other.manifest_sha256 and self.embed_dim == other.embed_dim


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the index (and the server) use of a model: ``ZeroShotModel`` is one. ``folder`` holds its
    ``manifest.json``; embeddings come back float32 [N, D], L2-normalised."""

    folder: Path
    manifest: Manifest

    def encode_pixels(self, pixel_values: np.ndarray) -> np.ndarray: ...

    def embed_images(self, images: Sequence) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray: ...

    def label_embeddings(self, labels: Sequence[str], template: str | Sequence[str]) -> np.ndarray: ...

    def logits(self, image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray: ...

    def scores(self, logits: np.ndarray) -> np.ndarray: ...


class Backend(Protocol):
    """Storage and nearest-neighbour search; the ``Index`` does the walking, decoding and embedding."""

    where: str  # the database, for messages (no password)

    def model_record(self) -> ModelRecord | None: ...

    expect: str | None
    """The manifest sha256 the caller's queries are embedded for: a search that finds another active model
    raises ``ModelSwitched`` instead of comparing vectors of two models (None: no check)."""

    def next_record(self) -> ModelRecord | None:
        """The model of the vector set a switch is building, or None."""

    def start_next(self, record: ModelRecord) -> None:
        """Begin (or, same model, resume) building a vector set for ``record`` beside the active one; an
        unfinished set of another model is dropped."""

    def switch(self, gone: set[str]) -> list[str]:
        """One transaction: make the set being built active and drop the old one, unless the active set holds
        paths the new one lacks (besides ``gone``: files that vanished or became unreadable); those are
        returned instead, nothing changed."""

    def for_writing(self) -> None:
        """Make ready to write (before an indexing run); a database that cannot be written is refused here."""

    def set_model_record(self, record: ModelRecord) -> None:
        """Record the model (creating the schema on first use); refuses to replace a different one."""

    def files(self, staged: bool = False) -> dict[str, Stored]:
        """Path -> what is stored of every row (``staged``: of the set a switch is building)."""

    def apply(
        self,
        upserts: Sequence[Row] = (),
        touches: Sequence[Touch] = (),
        removals: Sequence[str] = (),
        staged: bool = False,
    ) -> int:
        """One transaction: insert-or-replace rows (keyed by path), update stats, delete paths; returns the
        number of rows deleted. A crash leaves the database as it was before or after, never between.
        ``staged``: into the set a switch is building (searches do not see it; ``generation`` unchanged)."""

    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> None:
        """Insert many new rows into an empty index, one transaction per batch, the fastest way the back-end
        has (PostgreSQL: COPY, the HNSW index dropped and built once at the end; SQLite: ``apply``)."""

    def prepare(self, exact: bool = False) -> None:
        """Open what a search will read (SQLite: the sidecar graph, or the vectors for ``exact``), so that it can
        overlap with embedding the query in another thread."""

    def search(self, query: np.ndarray, k: int, exact: bool = False) -> list[Hit]:
        """The ``k`` rows most similar (cosine) to the normalised ``query``, best first: through the
        approximate index (HNSW), or compared with every row when ``exact``."""

    def refresh_search(self) -> None:
        """Bring the approximate index up to date after writes (SQLite: rebuild a stale sidecar; PostgreSQL:
        nothing, the server maintains its HNSW index)."""

    def vectors(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """All rows: ids [N], paths, embeddings float32 [N, D]."""

    def path_of(self, image_id: int) -> str | None: ...

    def file_of(self, image_id: int) -> tuple[str, Stored] | None:
        """The path of row ``image_id`` and the size, mtime and sha256 it was indexed with."""

    def count(self, staged: bool = False) -> int: ...

    def metadata(self, ids: Sequence[int]) -> dict[int, PhotoInfo]:
        """The stored photo metadata of rows ``ids`` that have it."""

    def search_filtered(self, query: np.ndarray, k: int, where: SearchFilter) -> list[Hit]:
        """``search`` among the rows ``where`` lets through, scored exactly."""

    def info(self) -> dict[str, Any]: ...

    def problem(self) -> str | None:
        """Why the database cannot be read now (file deleted, connection lost), or None; cheap, no query."""

    def close(self) -> None: ...


def top_hits(ids: np.ndarray, paths: Sequence[str], scores: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` best of ``scores`` (ties by row order), as hits."""
    if len(scores) == 0:
        return []
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.lexsort((best, -scores[best]))]
    return [Hit(int(ids[i]), paths[i], float(scores[i])) for i in best]
