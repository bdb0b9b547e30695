"""The index schema as data: per back-end, an ordered list of (version, statements). A database records the
version it is at (``meta.schema_version``); opening it applies the missing steps in one transaction, and a
database newer than this clipforge is refused. Add a step, never edit a released one.

Both back-ends hold the same three tables (PostgreSQL keeps them in the ``clipforge`` schema):

- ``meta(key, value)``: ``schema_version`` and ``generation`` (bumped by every write, so readers know when a
  cached copy of the vectors is stale);
- ``model``: one row describing the model whose embeddings the database holds;
- ``images``: one row per indexed file, keyed by path, with its size, mtime, content sha256 and the
  L2-normalised embedding (SQLite: float32 little-endian blob; PostgreSQL: ``vector(D)`` with an HNSW index),
  and (version 2) the photo's metadata (``runtime.photo_info``): ``taken`` (``YYYY-MM-DDTHH:MM:SS``, camera
  local time) and ``taken_from`` (``exif`` or ``mtime``), ``lat``/``lon``, ``make``/``model``, ``width``/
  ``height`` and ``orientation``. Rows of a version-1 database keep their embeddings; ``taken_from`` NULL marks
  them, and the next ``index`` run reads their headers (no pixel decoded, nothing re-embedded) to fill them.

Version 3 adds the model switch (``Index(..., switch=True)``, ``clipforge index -m NEW``): ``model_next`` records
the model of a vector set being built beside the active one, in ``images_next`` (created when a switch starts,
the same columns as ``images``; writes to it do not bump ``generation``, which counts changes of the active
set). ``FLIP_*`` is the one transaction that makes it active: the old ``images`` is dropped, ``images_next``
renamed into its place (with its indexes), ``model_next`` copied into ``model``.
"""

from __future__ import annotations

from clipforge.errors import InputError

SCHEMA_VERSION = 3

# (column, SQLite type, PostgreSQL type) of the photo metadata, in ``PhotoInfo``'s field order
PHOTO_COLUMNS = (
    ("taken", "TEXT", "text"),
    ("taken_from", "TEXT", "text"),
    ("lat", "REAL", "double precision"),
    ("lon", "REAL", "double precision"),
    ("make", "TEXT", "text"),
    ("model", "TEXT", "text"),
    ("width", "INTEGER", "integer"),
    ("height", "INTEGER", "integer"),
    ("orientation", "INTEGER", "integer"),
)
PHOTO_NAMES = tuple(name for name, _, _ in PHOTO_COLUMNS)

SQLITE: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE model (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            family TEXT NOT NULL, source TEXT NOT NULL, folder TEXT NOT NULL,
            manifest_sha256 TEXT NOT NULL, embed_dim INTEGER NOT NULL, preprocessing TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
            """CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT NOT NULL,
            embedding BLOB NOT NULL,
            indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
            "CREATE INDEX images_sha256 ON images (sha256)",
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', '0')",
        ],
    ),
    (
        2,
        [
            *(f"ALTER TABLE images ADD COLUMN {name} {kind}" for name, kind, _ in PHOTO_COLUMNS),
            # covering the filters (folder, date, place, camera): resolving one scans this index, never the
            # table, whose rows hold the embedding blobs (and the columns added here sit after them)
            "CREATE INDEX images_photo ON images (taken, lat, lon, make, model, path)",
        ],
    ),
]

SQLITE_MODEL_NEXT = """CREATE TABLE model_next (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            family TEXT NOT NULL, source TEXT NOT NULL, folder TEXT NOT NULL,
            manifest_sha256 TEXT NOT NULL, embed_dim INTEGER NOT NULL, preprocessing TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"""
SQLITE.append((3, [SQLITE_MODEL_NEXT]))

# the vector set a switch builds (secondary indexes are created by the flip: SQLite cannot rename an index)
SQLITE_NEXT = [
    f"""CREATE TABLE images_next (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT NOT NULL,
    embedding BLOB NOT NULL,
    indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    {", ".join(f"{name} {kind}" for name, kind, _ in PHOTO_COLUMNS)})"""
]
SQLITE_FLIP = [
    "DROP TABLE images",
    "ALTER TABLE images_next RENAME TO images",
    "CREATE INDEX images_sha256 ON images (sha256)",
    "CREATE INDEX images_photo ON images (taken, lat, lon, make, model, path)",
    "INSERT OR REPLACE INTO model SELECT * FROM model_next",
    "DELETE FROM model_next",
]

# ``{dim}`` is the model's embedding size, known when the first model is recorded.
POSTGRES: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE EXTENSION IF NOT EXISTS vector",
            "CREATE TABLE IF NOT EXISTS clipforge.meta (key text PRIMARY KEY, value text NOT NULL)",
            """CREATE TABLE clipforge.model (
            id integer PRIMARY KEY CHECK (id = 1),
            family text NOT NULL, source text NOT NULL, folder text NOT NULL,
            manifest_sha256 text NOT NULL, embed_dim integer NOT NULL, preprocessing jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())""",
            """CREATE TABLE clipforge.images (
            id bigserial PRIMARY KEY,
            path text NOT NULL UNIQUE, size bigint NOT NULL, mtime double precision NOT NULL,
            sha256 text NOT NULL, embedding vector({dim}) NOT NULL,
            indexed_at timestamptz NOT NULL DEFAULT now())""",
            "CREATE INDEX images_sha256 ON clipforge.images (sha256)",
            "CREATE INDEX images_embedding_hnsw ON clipforge.images USING hnsw (embedding vector_cosine_ops)",
            "INSERT INTO clipforge.meta (key, value) VALUES ('generation', '0') ON CONFLICT DO NOTHING",
        ],
    ),
    (
        2,
        [
            *(
                f"ALTER TABLE clipforge.images ADD COLUMN IF NOT EXISTS {name} {kind}"
                for name, _, kind in PHOTO_COLUMNS
            ),
            "CREATE INDEX IF NOT EXISTS images_taken ON clipforge.images (taken)",
        ],
    ),
]


POSTGRES.append(
    (
        3,
        [
            """CREATE TABLE IF NOT EXISTS clipforge.model_next (
            id integer PRIMARY KEY CHECK (id = 1),
            family text NOT NULL, source text NOT NULL, folder text NOT NULL,
            manifest_sha256 text NOT NULL, embed_dim integer NOT NULL, preprocessing jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())"""
        ],
    )
)

# the vector set a switch builds, with its indexes (renamed by the flip; HNSW built once before it)
POSTGRES_NEXT = [
    f"""CREATE TABLE clipforge.images_next (
    id bigserial PRIMARY KEY,
    path text NOT NULL UNIQUE, size bigint NOT NULL, mtime double precision NOT NULL,
    sha256 text NOT NULL, embedding vector({{dim}}) NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(),
    {", ".join(f"{name} {kind}" for name, _, kind in PHOTO_COLUMNS)})""",
    "CREATE INDEX images_next_sha256 ON clipforge.images_next (sha256)",
    "CREATE INDEX images_next_taken ON clipforge.images_next (taken)",
]
POSTGRES_NEXT_HNSW = (
    "CREATE INDEX IF NOT EXISTS images_next_embedding_hnsw ON clipforge.images_next USING hnsw "
    "(embedding vector_cosine_ops)"
)
POSTGRES_FLIP = [
    "DROP TABLE clipforge.images",
    "ALTER TABLE clipforge.images_next RENAME TO images",
    *(
        f"ALTER INDEX IF EXISTS clipforge.images_next_{name} RENAME TO images_{name}"
        for name in ("pkey", "path_key", "sha256", "taken", "embedding_hnsw")
    ),
    "ALTER SEQUENCE IF EXISTS clipforge.images_next_id_seq RENAME TO images_id_seq",
    "DELETE FROM clipforge.model",
    "INSERT INTO clipforge.model SELECT * FROM clipforge.model_next",
    "DELETE FROM clipforge.model_next",
]


def pending(steps: list[tuple[int, list[str]]], current: int, where: str) -> list[tuple[int, list[str]]]:
    """The steps after ``current``; a database written by a newer clipforge is refused."""
    latest = steps[-1][0]
    if current > latest:
        raise InputError(
            f"{where} has index schema version {current}, newer than this clipforge reads ({latest}); upgrade clipforge"
        )
    return [(version, statements) for version, statements in steps if version > current]
