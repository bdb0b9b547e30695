"""A private PostgreSQL 16 + pgvector server for tests and benchmarks, from the ``pgserver`` wheel (no system
service, no network: it listens on a Unix socket in its data folder).

Run as root, pgserver cannot start PostgreSQL as root: it creates a system user ``pgserver`` (``useradd``), gives
it the data folder and adds o+rx to the folders above it. The data folder is therefore a fresh
``/tmp/clipforge-pg-*`` folder, deleted when the server stops.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator

from clipforge.errors import require

# throw-away servers need no durability against an OS crash; without fsync, creating databases and the shutdown
# checkpoint take a fraction of the time (clients killed mid-transaction are still rolled back as usual)
NO_FSYNC = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextlib.contextmanager
def postgres_server(durable: bool = False) -> Iterator[str]:
    """Start a server in a temporary folder, yield its URL (database ``postgres``), stop and delete it."""
    pgserver = require("pgserver", "index")
    folder = tempfile.mkdtemp(prefix="clipforge-pg-")
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        if not durable:
            _configure(server.get_uri(), NO_FSYNC)
        yield server.get_uri()
    finally:
        server.cleanup()


def _configure(url: str, settings: dict[str, str]) -> None:
    psycopg = require("psycopg", "index")
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def fresh_database(url: str, prefix: str = "t") -> str:
    """Create an empty database on the server at ``url``; return its URL."""
    psycopg = require("psycopg", "index")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
