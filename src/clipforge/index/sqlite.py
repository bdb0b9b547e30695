"""SQLite back-end (stdlib ``sqlite3``): one file, WAL mode (searches run while an indexer writes), vectors as
float32 blobs. Searches go through the approximate sidecar (``ann.py``: a memory-mapped usearch graph beside the
file, used only when it was built from the database's current ``meta.generation``; candidates re-scored exactly
from the stored rows) once the index holds ``ann_min_rows`` rows. Below that, with ``exact=True``, or when the
sidecar is stale and not rebuilt (read-only folder, or a write in the last ``QUIET_SECONDS``), search is exact
in numpy over the vectors read once and cached until the table changes (every write bumps ``meta.generation``,
also from other processes). ``refresh_search`` (run at the end of ``Index.add``) rebuilds a stale sidecar; so
does a search otherwise. docs/index.md has the figures that chose usearch (and numpy over ``sqlite-vec``).

A database is opened read-only (``mode=ro``: no WAL switch, no schema change, works on a read-only file in a
read-only folder) and reopened for writing at the first write (which also creates a missing file), so searching
never modifies or creates the database (it may write the sidecar beside it); a database that is not a clipforge
index is refused before anything is written. The file's identity is checked before every read: a database
deleted while open is reported, one replaced at the same path is reopened."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from pathlib import Path

import numpy as np

from clipforge._dblocation import redact
from clipforge._faults import kill_point
from clipforge._fspath import from_db, to_db
from clipforge.errors import InputError, MissingDependencyError
from clipforge.index import ann, schema
from clipforge.index.base import Hit, ModelRecord, ModelSwitched, Row, Stored, Touch, top_hits
from clipforge.index.filters import SearchFilter, haversine_km, sql_conditions
from clipforge.index.schema import PHOTO_NAMES
from clipforge.runtime.photo_info import PhotoInfo

MODEL_COLUMNS = ("family", "source", "folder", "manifest_sha256", "embed_dim", "preprocessing")
CLIPFORGE_TABLES = {"meta", "model", "images"}
ANN_MIN_ROWS = 10_000  # below this an exact search reads fewer vectors than a cold graph costs: docs/index.md
RERANK = 64  # sidecar candidates re-scored exactly (at least k)
CHUNK = 8192  # rows per read when building the sidecar
QUIET_SECONDS = 30  # a search rebuilds a stale sidecar only after this long without writes


class SqliteBackend:
    def __init__(self, path: str | Path, ann_min_rows: int = ANN_MIN_ROWS):
        self.path = Path(path).expanduser()
        self.where = redact(self.path)
        if self.path.exists() and not self.path.is_file():
            raise InputError(f"database {self.where} is not a file; pass a .db file path or a postgresql:// URL")
        if not self.path.parent.is_dir():
            raise InputError(f"folder {self.path.parent} of database {self.where} does not exist; create it first")
        self._lock = threading.RLock()
        self._cache: tuple[int, str, np.ndarray, list[str], np.ndarray] | None = None
        self.expect: str | None = None
        if os.access(self.path.parent, os.W_OK):
            ann.sweep(self.path)  # temporary files of sidecar rebuilds killed midway
        self.ann_min_rows, self._graph = int(ann_min_rows), None
        self.conn: sqlite3.Connection | None = None
        self._writable, self._identity = False, None
        try:
            self._open_existing()
        except BaseException:
            self.close()
            raise

    # --- opening ------------------------------------------------------------------------------------------
    def _open_existing(self) -> None:
        """Open the file read-only; a file that does not exist yet is created by the first write only (until
        then the index reads as empty)."""
        if self.path.exists():
            self._open(writable=False)
        else:
            self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)

    def _open(self, writable: bool) -> None:
        """(Re)open the file: read-only, or for writing (WAL, schema migrated); the identity is recorded."""
        try:
            conn = self._connect_writing() if writable else self._connect_reading()
            self._swap(conn, writable)
            self._check_clipforge()
            if writable:
                self._migrate()
        except sqlite3.OperationalError as exc:
            raise self._operational(exc) from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.where} is not a clipforge SQLite index ({exc}); pass another --db") from None

    def _connect_reading(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if os.access(self.path.parent, os.W_OK):
                raise
        # a WAL database in a folder nobody may write to: no writer can exist, so read it as immutable
        return sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None, check_same_thread=False)

    def _connect_writing(self) -> sqlite3.Connection:
        self._check_writable()
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: a killed process loses nothing committed
        except BaseException:
            conn.close()
            raise
        return conn

    def _swap(self, conn: sqlite3.Connection, writable: bool) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self._writable, self._cache = conn, writable, None
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)

    def _check_writable(self) -> None:
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise InputError(
                f"database {self.where} is read-only; make it writable (chmod u+w) or index into another --db"
            )
        if not os.access(self.path.parent, os.W_OK):
            raise InputError(
                f"folder {self.path.parent} of database {self.where} is read-only (SQLite writes its "
                "journal beside the database); make it writable or index into another --db"
            )

    def _check_clipforge(self) -> None:
        """Refuse a database that holds other tables and no clipforge index (another application's file)."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not (tables >= CLIPFORGE_TABLES and self._version()):
            others = ", ".join(sorted(tables - CLIPFORGE_TABLES)[:5]) or ", ".join(sorted(tables))
            raise InputError(
                f"{self.where} is not a clipforge index (it holds tables {others}); it was left "
                "unchanged; pass another --db"
            )

    def _operational(self, exc: sqlite3.OperationalError) -> InputError:
        if "readonly" in str(exc) or "read-only" in str(exc):
            return InputError(
                f"database {self.where} is read-only ({exc}); make the file and its folder "
                "writable or index into another --db"
            )
        return InputError(f"cannot open {self.where} ({exc}); another process may hold it, retry later")

    def for_writing(self) -> None:
        """Reopen for writing (a read-only file or folder, or another application's database, is refused)."""
        with self._lock:
            if not self._writable:
                self._open(writable=True)

    def _current(self) -> None:
        """Before a read: a deleted file is an error, a replaced one (new inode) is reopened."""
        if self._identity is None:  # not created yet: another process may have created it since
            if self.path.exists():
                self._open(writable=False)
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise InputError(
                f"database {self.where} was deleted while open; restore it or index again, then restart"
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            self._open(writable=self._writable)

    def problem(self) -> str | None:
        """Why the database cannot be read now (deleted while open), or None."""
        try:
            with self._lock:
                self._current()
        except InputError as exc:
            return str(exc)
        return None

    # --- schema -------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply missing schema steps; an up-to-date database is only read (no write lock: opening it for a
        search never waits for an indexer's transaction)."""
        if not schema.pending(schema.SQLITE, self._version(), self.where):
            return
        with self._lock, self._write():
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for version, statements in schema.pending(schema.SQLITE, self._version(), self.where):
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),)
                )

    def _version(self) -> int:
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return 0
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return int(row[0]) if row else 0
        except (sqlite3.OperationalError, ValueError):  # a 'meta' table of another application
            return 0

    def _write(self):
        self.for_writing()
        return _Transaction(self.conn, self._operational)

    def _bump(self) -> None:
        self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def _generation(self) -> int:
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    # --- model --------------------------------------------------------------------------------------------
    def model_record(self) -> ModelRecord | None:
        return self._record("model")

    def next_record(self) -> ModelRecord | None:
        return self._record("model_next")

    def _record(self, table: str) -> ModelRecord | None:
        with self._lock:
            self._current()
            if not self._version() or (table == "model_next" and self._version() < 3):
                return None
            row = self.conn.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM {table} WHERE id = 1").fetchone()
        if row is None:
            return None
        values = dict(zip(MODEL_COLUMNS, row))
        values["preprocessing"] = json.loads(values["preprocessing"])
        return ModelRecord(**values)

    def start_next(self, record: ModelRecord) -> None:
        values = [getattr(record, c) for c in MODEL_COLUMNS]
        values[-1] = json.dumps(record.preprocessing, sort_keys=True)
        with self._lock, self._write():
            row = self.conn.execute("SELECT manifest_sha256, embed_dim FROM model_next WHERE id = 1").fetchone()
            if row == (record.manifest_sha256, record.embed_dim) and self._has_next():
                return  # resume
            self.conn.execute("DROP TABLE IF EXISTS images_next")
            self.conn.execute("DELETE FROM model_next")
            for statement in schema.SQLITE_NEXT:
                self.conn.execute(statement)
            marks = ", ".join("?" * len(MODEL_COLUMNS))
            self.conn.execute(f"INSERT INTO model_next (id, {', '.join(MODEL_COLUMNS)}) VALUES (1, {marks})", values)

    def _has_next(self) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images_next'"
        return self.conn.execute(query).fetchone() is not None

    def switch(self, gone: set[str]) -> list[str]:
        """The flip (``schema.SQLITE_FLIP``, one transaction), unless the active set holds paths the new one
        lacks. The new set's sidecar graph is written before (searches keep the old one) and published right
        after. Kill point ``switch``: inside the flip's transaction, before it commits."""
        with self._lock:
            pending = self._prebuild()
            try:
                with self._write():
                    if not self._has_next():
                        return []  # flipped (or abandoned) by another process: the caller checks the record
                    missing = [
                        from_db(p)
                        for (p,) in self.conn.execute(
                            "SELECT path FROM images WHERE path NOT IN (SELECT path FROM images_next)"
                        )
                    ]
                    missing = [p for p in missing if p not in gone]
                    if missing:
                        return missing
                    kill_point("switch")
                    for statement in schema.SQLITE_FLIP:
                        self.conn.execute(statement)
                    self._bump()
                    stamp = self._stamp()
                if pending is not None and pending.stamp == stamp:
                    ann.publish(self.path, pending)
            finally:
                if pending is not None:
                    pending.discard()
        return []

    def _prebuild(self) -> ann.Pending | None:
        """The new set's sidecar graph, stamped as the database will be after the flip (None: too small, or
        usearch missing)."""
        if self.count(staged=True) < self.ann_min_rows:
            return None
        self.conn.execute("BEGIN")
        try:
            model = self.next_record()
            last = self.conn.execute("SELECT max(id) FROM images_next").fetchone()[0]
            stamp = ann.Stamp(self._generation() + 1, int(last or 0), model.embed_dim, model.manifest_sha256)
            return ann.write(self.path, stamp, self._chunks("images_next"))
        except MissingDependencyError:
            return None
        finally:
            self.conn.execute("COMMIT")

    def set_model_record(self, record: ModelRecord) -> None:
        values = [getattr(record, c) for c in MODEL_COLUMNS]
        values[-1] = json.dumps(record.preprocessing, sort_keys=True)
        with self._lock, self._write():
            marks = ", ".join("?" * len(MODEL_COLUMNS))
            self.conn.execute(
                f"INSERT OR IGNORE INTO model (id, {', '.join(MODEL_COLUMNS)}) VALUES (1, {marks})", values
            )

    # --- rows ---------------------------------------------------------------------------------------------
    def files(self, staged: bool = False) -> dict[str, Stored]:
        with self._lock:
            self._current()
            if not self._version() or (staged and not self._has_next()):
                return {}
            described = "taken_from IS NOT NULL" if self._version() >= 2 else "0"
            table = _table(staged)
            rows = self.conn.execute(f"SELECT path, size, mtime, sha256, {described} FROM {table}").fetchall()
        return {from_db(path): Stored(size, mtime, sha, bool(info)) for path, size, mtime, sha, info in rows}

    def apply(
        self,
        upserts: Sequence[Row] = (),
        touches: Sequence[Touch] = (),
        removals: Sequence[str] = (),
        staged: bool = False,
    ) -> int:
        table = _table(staged)
        with self._lock, self._write():
            self.conn.executemany(
                f"INSERT INTO {table} (path, size, mtime, sha256, embedding, {', '.join(PHOTO_NAMES)}) "
                f"VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(PHOTO_NAMES))}) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, "
                "sha256 = excluded.sha256, embedding = excluded.embedding, indexed_at = CURRENT_TIMESTAMP, "
                + ", ".join(f"{c} = excluded.{c}" for c in PHOTO_NAMES),
                [(to_db(r.path), r.size, r.mtime, r.sha256, _blob(r.embedding), *_photo(r.info)) for r in upserts],
            )
            self.conn.executemany(
                f"UPDATE {table} SET size = ?, mtime = ? WHERE path = ?",
                [(t.size, t.mtime, to_db(t.path)) for t in touches if t.info is None],
            )
            self.conn.executemany(
                f"UPDATE {table} SET size = ?, mtime = ?, {', '.join(f'{c} = ?' for c in PHOTO_NAMES)} WHERE path = ?",
                [(t.size, t.mtime, *_photo(t.info), to_db(t.path)) for t in touches if t.info is not None],
            )
            before = self.conn.total_changes
            self.conn.executemany(f"DELETE FROM {table} WHERE path = ?", [(to_db(p),) for p in removals])
            removed = self.conn.total_changes - before
            if (upserts or touches or removed) and not staged:
                self._bump()
        return removed

    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> None:
        """SQLite has no faster path than its transactions: each batch is one ``apply``."""
        for rows in batches:
            self.apply(rows)

    # --- search -------------------------------------------------------------------------------------------
    def vectors(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """All rows, read once and cached until ``meta.generation`` changes."""
        with self._lock:
            self._current()
            if not self._version():
                return np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32)
            generation = self._generation()
            if self._cache is None or self._cache[0] != generation:
                self._cache = self._read_all()
            self._check_expected(self._cache[1])
            return self._cache[2:]

    def _check_expected(self, manifest: str) -> None:
        if self.expect is not None and manifest != self.expect:
            raise ModelSwitched(
                f"{self.where} switched to another model (manifest {manifest[:12]}) while this search "
                f"was embedded for manifest {self.expect[:12]}; search again"
            )

    def _read_all(self) -> tuple[int, str, np.ndarray, list[str], np.ndarray]:
        self.conn.execute("BEGIN")  # one snapshot: the rows, the generation and the model agree
        try:
            generation, dim = self._generation(), self._dim()
            manifest = self._stamp().manifest_sha256
            rows = self.conn.execute("SELECT id, path, embedding FROM images ORDER BY id").fetchall()
        finally:
            self.conn.execute("COMMIT")
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        matrix = np.empty((len(rows), dim), np.float32)  # owned and aligned: ~25% faster products than frombuffer
        for i, row in enumerate(rows):
            matrix[i] = np.frombuffer(row[2], "<f4")
        return generation, manifest, ids, [from_db(r[1]) for r in rows], matrix

    def _dim(self) -> int:
        row = self.conn.execute("SELECT embed_dim FROM model WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def prepare(self, exact: bool = False) -> None:
        """Open what a search will read: the sidecar graph (memory-mapped), or with ``exact`` the vectors."""
        if exact:
            self.vectors()
            return
        with self._lock:
            self._current()
            if self._version() and self._stamp().last_id:
                self._graph_for(self._stamp())

    def search(self, query: np.ndarray, k: int, exact: bool = False) -> list[Hit]:
        if not exact:
            hits = self.approximate(query, k)
            if hits is not None:
                return hits
        ids, paths, matrix = self.vectors()
        if not len(ids):
            return []
        return top_hits(ids, paths, matrix @ query.astype(np.float32), k)

    def approximate(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Hit] | None:
        """The ``k`` best hits through the sidecar (restricted to the row ids ``allowed``), exact cosine scores;
        None when the sidecar cannot be used (small index, stale and read-only, usearch missing)."""
        with self._lock:
            self._current()
            if not self._version() or self._stamp().last_id == 0:
                return None
            graph = self._graph_for(self._stamp())
            if graph is None:
                return None
            self.conn.execute("BEGIN")  # one snapshot: the stamp the graph matches and the rows re-scored
            try:
                if self._stamp() != graph.stamp:
                    return None
                self._check_expected(graph.stamp.manifest_sha256)
                rows = self._rows(graph.candidates(query, max(k, RERANK), allowed))
            finally:
                self.conn.execute("COMMIT")
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        matrix = np.array([np.frombuffer(r[2], "<f4") for r in rows], np.float32).reshape(len(rows), -1)
        return top_hits(ids, [from_db(r[1]) for r in rows], matrix @ query.astype(np.float32), k)

    def _stamp(self) -> ann.Stamp:
        row = self.conn.execute("SELECT manifest_sha256, embed_dim FROM model WHERE id = 1").fetchone()
        last = self.conn.execute("SELECT max(id) FROM images").fetchone()[0]
        return ann.Stamp(self._generation(), int(last or 0), int(row[1]) if row else 0, row[0] if row else "")

    def _graph_for(self, stamp: ann.Stamp) -> ann.Graph | None:
        """The sidecar graph built from ``stamp``: cached, opened, or rebuilt (folder writable); else None."""
        if self._graph is not None and self._graph.stamp == stamp:
            return self._graph
        self._graph = None
        try:
            graph = ann.Graph.open(self.path, stamp)
            if graph is None and self._sidecar_wanted() and self._may_rebuild():
                self.refresh_search()
                graph = ann.Graph.open(self.path, stamp)
        except MissingDependencyError:
            return None
        self._graph = graph
        return graph

    def _may_rebuild(self) -> bool:
        """A search rebuilds a stale sidecar only when it can write beside the database and no process wrote
        to it for ``QUIET_SECONDS`` (the WAL file's mtime): during another process's indexing run every batch
        makes the sidecar stale, and that run rebuilds it once at its end; until then searches are exact."""
        if not os.access(self.path.parent, os.W_OK):
            return False
        try:
            return time.time() - os.stat(f"{self.path}-wal").st_mtime > QUIET_SECONDS
        except FileNotFoundError:
            return True

    def _sidecar_wanted(self) -> bool:
        return self.count() >= self.ann_min_rows

    def refresh_search(self) -> None:
        """Rebuild the sidecar unless it matches the database (an index below ``ann_min_rows`` rows has none:
        a leftover sidecar is removed)."""
        with self._lock:
            self._current()
            if not self._version():
                return
            if not self._sidecar_wanted():
                if any(p.exists() for p in ann.files(self.path)):
                    ann.remove(self.path)
                return
            self.conn.execute("BEGIN")  # the rows and the stamp of one snapshot
            try:
                stamp = self._stamp()
                if ann.Graph.open(self.path, stamp) is None:
                    ann.build(self.path, stamp, self.count(), self._chunks("images"))
            finally:
                self.conn.execute("COMMIT")

    def _chunks(self, table: str):
        cursor = self.conn.execute(f"SELECT id, embedding FROM {table} ORDER BY id")
        while rows := cursor.fetchmany(CHUNK):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            yield ids, np.frombuffer(b"".join(r[1] for r in rows), "<f4").reshape(len(rows), -1)

    def _rows(self, ids: np.ndarray) -> list[tuple]:
        out = []
        for start in range(0, len(ids), 900):  # SQLite's default limit of bound parameters is 999
            part = [int(i) for i in ids[start : start + 900]]
            marks = ", ".join("?" * len(part))
            out += self.conn.execute(f"SELECT id, path, embedding FROM images WHERE id IN ({marks})", part).fetchall()
        return out

    def path_of(self, image_id: int) -> str | None:
        with self._lock:
            self._current()
            if not self._version():
                return None
            row = self.conn.execute("SELECT path FROM images WHERE id = ?", (int(image_id),)).fetchone()
        return from_db(row[0]) if row else None

    def file_of(self, image_id: int) -> tuple[str, Stored] | None:
        with self._lock:
            self._current()
            if not self._version():
                return None
            row = self.conn.execute(
                "SELECT path, size, mtime, sha256 FROM images WHERE id = ?", (int(image_id),)
            ).fetchone()
        return (from_db(row[0]), Stored(row[1], row[2], row[3])) if row else None

    def count(self, staged: bool = False) -> int:
        with self._lock:
            self._current()
            if not self._version() or (staged and not self._has_next()):
                return 0
            return int(self.conn.execute(f"SELECT count(*) FROM {_table(staged)}").fetchone()[0])

    # --- photo metadata (schema version 2) ----------------------------------------------------------------
    def metadata(self, ids: Sequence[int]) -> dict[int, PhotoInfo]:
        """The stored photo metadata of rows ``ids`` (rows without it, or a version-1 database: absent)."""
        with self._lock:
            self._current()
            if self._version() < 2 or not len(ids):
                return {}
            found = {}
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                found.update(
                    (row[0], PhotoInfo(*row[1:]))
                    for row in self.conn.execute(
                        f"SELECT id, {', '.join(PHOTO_NAMES)} FROM images WHERE taken_from IS NOT NULL "
                        f"AND id IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    )
                )
        return found

    def candidate_ids(self, where: SearchFilter) -> np.ndarray:
        """The ids (ascending) of the rows ``where`` lets through, resolved in SQL (``near``: a latitude band in
        SQL, then the exact distance in numpy). The exact pre-filter a filtered search scores."""
        conditions, params = sql_conditions(where, "sqlite")
        with self._lock:
            self._current()
            version = self._version()
            if not version:
                return np.zeros(0, np.int64)
            if version < 2 and where.narrows:
                raise InputError(
                    f"{self.where} was indexed before photo metadata (schema version {version}); run "
                    "'clipforge index' on its folders once to add dates, places and cameras, then filter"
                )
            sql = f"SELECT id{', lat, lon' if where.near else ''} FROM images"
            sql += f" WHERE {' AND '.join(conditions)}" if conditions else ""
            rows = self.conn.execute(sql, params).fetchall()  # no ORDER BY: it would make SQLite scan the table
        if where.near:
            return np.sort(_near(rows, where.near))
        return np.sort(np.fromiter((r[0] for r in rows), np.int64, len(rows)))

    def search_filtered(self, query: np.ndarray, k: int, where: SearchFilter, exact: bool = False) -> list[Hit]:
        """``search`` restricted to ``candidate_ids(where)``: through the sidecar when it can be used (a few
        thousand candidates are scored exactly, more are over-fetched), else exact scores of those rows (numpy,
        from the cached vectors); the ``k`` best."""
        wanted = self.candidate_ids(where)
        if not len(wanted):
            return []
        if not exact:
            hits = self.approximate(query, k, wanted)
            if hits is not None:
                return hits
        ids, paths, matrix = self.vectors()
        if not len(ids):
            return []
        rows = np.searchsorted(ids, wanted)
        rows = rows[(rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == wanted)]  # rows of the snapshot
        return top_hits(ids[rows], [paths[i] for i in rows], matrix[rows] @ query.astype(np.float32), k)

    def info(self) -> dict:
        with self._lock:
            version = self._version()
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "backend": "sqlite",
            "db": self.where,
            "schema_version": version,
            "search": self._search_kind(),
            "bytes": size,
        }

    def _search_kind(self) -> str:
        if self.count() < self.ann_min_rows:
            return f"numpy exact (below {self.ann_min_rows} images)"
        return f"usearch HNSW {ann.QUANTISATION} sidecar, {RERANK} candidates re-scored exactly"

    def close(self) -> None:
        with self._lock:
            self._graph = None
            if self.conn is not None:
                self.conn.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error): writers queue instead of failing. A
    write refused by the file system (read-only file or folder) becomes one ``InputError`` line."""

    def __init__(self, conn: sqlite3.Connection, explain):
        self.conn, self.explain = conn, explain

    def __enter__(self):
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self.explain(exc) from None
        return self.conn

    def __exit__(self, kind, exc, tb):
        try:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.OperationalError as error:
            if kind is None:
                raise self.explain(error) from None
        if isinstance(exc, sqlite3.OperationalError):
            raise self.explain(exc) from None
        return False


def _table(staged: bool) -> str:
    return "images_next" if staged else "images"


def _near(rows: list[tuple], near: tuple[float, float, float]) -> np.ndarray:
    """The ids of (id, lat, lon) rows within ``near``'s km of its point."""
    if not rows:
        return np.zeros(0, np.int64)
    table = np.asarray(rows, np.float64)
    lat, lon, km = near
    return table[haversine_km(lat, lon, table[:, 1], table[:, 2]) <= km, 0].astype(np.int64)


def _photo(info: PhotoInfo | None) -> tuple:
    return astuple(info) if info is not None else (None,) * len(PHOTO_NAMES)


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()
