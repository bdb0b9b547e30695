"""An embedding index of image folders in SQLite (embedded, the default) or PostgreSQL + pgvector.

    from clipforge.index import Index
    with Index("photos.db", model="clip-b32") as idx:
        idx.add(["~/Pictures"])
        idx.search(text="a red car", k=10)      # [Hit(id, path, score), ...]

``Index`` owns the algorithm: ``plan`` / ``store`` (what ``add`` and the Ray engine run) and ``query`` (what
``search`` and the server run). ``Backend`` is the small protocol each back-end implements (sqlite.py,
postgres.py), opened by ``open_backend``; the schema and its migrations are data (schema.py); walking and
decoding are shared (walker.py, ingest.py).
"""

from clipforge.index.api import Index
from clipforge.index.backends import open_backend
from clipforge.index.base import Backend, EmbeddingModel, Hit, IndexSummary, ModelRecord, Row
from clipforge.index.filters import FilterError, SearchFilter
from clipforge.index.ingest import Batch, Counts, Plan
from clipforge.index.relevance import Calibration
from clipforge.index.walker import Decoded, FileState, header_info

__all__ = [
    "Index",
    "Hit",
    "SearchFilter",
    "FilterError",
    "Calibration",
    "IndexSummary",
    "open_backend",
    "Backend",
    "EmbeddingModel",
    "ModelRecord",
    "Row",
    "Plan",
    "Batch",
    "Counts",
    "Decoded",
    "FileState",
    "header_info",
]
