"""An embedding index of image folders in SQLite (embedded, the default) or PostgreSQL + pgvector.

    from clipforge.index import Index
    with Index("photos.db", model="clip-b32") as idx:
        idx.add(["~/Pictures"])
        idx.search(text="a red car", k=10)      # [Hit(id, path, score), ...]

``Backend`` is the small protocol each back-end implements (sqlite.py, postgres.py); the schema and its
migrations are data (schema.py); walking and decoding are shared (walker.py, ingest.py).
"""

from clipforge.index.api import Index, open_backend
from clipforge.index.base import Backend, Hit, IndexSummary, ModelRecord, Row

__all__ = ["Index", "Hit", "IndexSummary", "open_backend", "Backend", "ModelRecord", "Row"]
