"""``open_backend(db)``: the one place that turns a database location into a back-end."""

from __future__ import annotations

from pathlib import Path

from clipforge._dblocation import is_postgres, redact, sqlite_file
from clipforge.errors import InputError
from clipforge.index.base import Backend
from clipforge.index.postgres import PostgresBackend
from clipforge.index.sqlite import SqliteBackend


def open_backend(db: str | Path, **options) -> Backend:
    """``postgresql://...`` (or a libpq ``key=value`` string) -> PostgreSQL + pgvector (``options``: e.g.
    ``ef_search``, ``build_memory``); a path -> a SQLite file (created when first written; ``options``:
    ``ann_min_rows``); any other URL is refused."""
    if is_postgres(db):
        return PostgresBackend(str(db), **options)
    file = sqlite_file(db)
    if file is None:
        raise InputError(f"database {redact(db)!r} is neither a file path nor a postgresql:// URL")
    return SqliteBackend(file, **options)
