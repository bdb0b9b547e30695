"""PostgreSQL + pgvector back-end (psycopg 3): tables in the ``clipforge`` schema, a ``vector(D)`` column with an
HNSW cosine index, searches as ``ORDER BY embedding <=> query LIMIT k``. Several machines can index into one
server at once: every batch is one transaction and schema changes hold an advisory lock."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import astuple

import numpy as np

from clipforge._dblocation import redact, secrets_of
from clipforge._faults import kill_point
from clipforge._fspath import from_db, to_db
from clipforge.errors import InputError, require
from clipforge.index import schema
from clipforge.index.base import Hit, ModelRecord, ModelSwitched, Row, Stored, Touch
from clipforge.index.filters import EARTH_KM, SearchFilter, sql_conditions
from clipforge.index.schema import PHOTO_NAMES
from clipforge.runtime.photo_info import PhotoInfo

# haversine_km (filters.py) in SQL: parameters lat, lat, lon of the point
HAVERSINE_SQL = (
    f"2 * {EARTH_KM} * asin(sqrt(least(1, power(sin(radians(lat - %s) / 2), 2) + cos(radians(%s)) "
    "* cos(radians(lat)) * power(sin(radians(lon - %s) / 2), 2))))"
)
MODEL_COLUMNS = ("family", "source", "folder", "manifest_sha256", "embed_dim", "preprocessing")
LOCK_KEY = 0x636C6970  # advisory lock id for schema changes ("clip")
DEFAULT_EF_SEARCH = 100  # HNSW candidate list per query on a small index; docs/index.md has the recall it gives
# hnsw.ef_search by the table's size when none is given: (at least this many rows, ef_search), largest first.
# recall@10 on embedding-like 512-d vectors (benchmarks/bench_search.py): 100k rows at 100: 0.960; 1M rows at
# 100 / 200 / 400 / 800: 0.81 / 0.92 / 0.98 / 0.996 (docs/index.md); sizes between the two get 400
EF_SEARCH_BY_ROWS = ((250_000, 400), (0, DEFAULT_EF_SEARCH))
BUILD_MEMORY = "1GB"  # maintenance_work_mem of an HNSW build: the graph is built in memory while it fits
HNSW_INDEX = "images_embedding_hnsw"
BUMP = "UPDATE clipforge.meta SET value = (value::bigint + 1)::text WHERE key = 'generation'"
CREATE_HNSW = f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON clipforge.images USING hnsw (embedding vector_cosine_ops)"


def ef_search_for(rows: int) -> int:
    """The ``hnsw.ef_search`` an index of about ``rows`` rows searches with (``EF_SEARCH_BY_ROWS``; -1, a table
    never analysed, counts as empty)."""
    return next(ef for least, ef in EF_SEARCH_BY_ROWS if max(rows, 0) >= least)


class PostgresBackend:
    def __init__(self, url: str, ef_search: int | None = None, build_memory: str = BUILD_MEMORY):
        """``ef_search``: HNSW's candidate list per query; None: by the table's size when opened
        (``EF_SEARCH_BY_ROWS``)."""
        psycopg = require("psycopg", "index")
        self.where, self._ef_given = redact(url), None if ef_search is None else int(ef_search)
        self.ef_search = self._ef_given or DEFAULT_EF_SEARCH
        if not re.fullmatch(r"\d+\s*[kMGT]?B", build_memory):
            raise InputError(f"build memory {build_memory!r} is not a PostgreSQL size such as 1GB or 512MB")
        self.build_memory = build_memory
        self.expect: str | None = None
        _check_userinfo(url, self.where)
        self._lock = threading.RLock()
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:  # libpq may quote the URL or a piece of the password: redacted, not chained
            message = redact(str(exc).strip(), secrets_of(url))
            first = message.splitlines()[0] if message else type(exc).__name__
            raise InputError(
                f"cannot connect to {self.where} ({first}); check the URL and that the server runs"
            ) from None
        self._vector_ready = False
        if self._table_exists("meta"):
            if schema.pending(schema.POSTGRES, self._version(), self.where):
                self._migrate(dim=None)
            self._register_vector()

    # --- schema -------------------------------------------------------------------------------------------
    def _table_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s)", (f"clipforge.{name}",)).fetchone()[0] is not None

    def _migrate(self, dim: int | None) -> None:
        """Apply the missing schema steps (``dim`` is needed only when creating the images table)."""
        with self._lock, self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            self.conn.execute("CREATE SCHEMA IF NOT EXISTS clipforge")
            self.conn.execute("CREATE TABLE IF NOT EXISTS clipforge.meta (key text PRIMARY KEY, value text NOT NULL)")
            steps = schema.pending(schema.POSTGRES, self._version(), self.where)
            if steps and steps[0][0] == 1 and dim is None:
                return  # the images table needs the model's dim: created when the first model is recorded
            if dim is None and self._table_exists("model"):
                dim = self.conn.execute("SELECT embed_dim FROM clipforge.model WHERE id = 1").fetchone()[0]
            for version, statements in steps:
                for statement in statements:
                    self.conn.execute(statement.format(dim=dim))
                self.conn.execute(
                    "INSERT INTO clipforge.meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )
        self._register_vector()

    def _version(self) -> int:
        row = self.conn.execute("SELECT value FROM clipforge.meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _register_vector(self) -> None:
        if not self._vector_ready and self._table_exists("images"):
            require("pgvector.psycopg", "index").register_vector(self.conn)
            self._vector_ready = True
            self._choose_ef_search()

    # --- model --------------------------------------------------------------------------------------------
    def model_record(self) -> ModelRecord | None:
        return self._record("model")

    def next_record(self) -> ModelRecord | None:
        return self._record("model_next")

    def _record(self, table: str) -> ModelRecord | None:
        with self._lock:
            if not self._table_exists(table):
                return None
            row = self.conn.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM clipforge.{table} WHERE id = 1").fetchone()
        if row is None:
            return None
        values = dict(zip(MODEL_COLUMNS, row))
        if isinstance(values["preprocessing"], str):
            values["preprocessing"] = json.loads(values["preprocessing"])
        return ModelRecord(**values)

    def set_model_record(self, record: ModelRecord) -> None:
        self._migrate(dim=record.embed_dim)
        values = [getattr(record, c) for c in MODEL_COLUMNS]
        values[-1] = json.dumps(record.preprocessing, sort_keys=True)
        with self._lock:
            self.conn.execute(
                f"INSERT INTO clipforge.model (id, {', '.join(MODEL_COLUMNS)}) "
                f"VALUES (1, {', '.join(['%s'] * len(MODEL_COLUMNS))}) ON CONFLICT (id) DO NOTHING",
                values,
            )

    def start_next(self, record: ModelRecord) -> None:
        values = [getattr(record, c) for c in MODEL_COLUMNS]
        values[-1] = json.dumps(record.preprocessing, sort_keys=True)
        with self._lock, self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            row = self.conn.execute("SELECT manifest_sha256, embed_dim FROM clipforge.model_next WHERE id = 1")
            if row.fetchone() == (record.manifest_sha256, record.embed_dim) and self._table_exists("images_next"):
                return  # resume
            self.conn.execute("DROP TABLE IF EXISTS clipforge.images_next")
            self.conn.execute("DELETE FROM clipforge.model_next")
            for statement in schema.POSTGRES_NEXT:
                self.conn.execute(statement.format(dim=int(record.embed_dim)))
            self.conn.execute(
                f"INSERT INTO clipforge.model_next (id, {', '.join(MODEL_COLUMNS)}) "
                f"VALUES (1, {', '.join(['%s'] * len(MODEL_COLUMNS))})",
                values,
            )

    def switch(self, gone: set[str]) -> list[str]:
        """The flip (``schema.POSTGRES_FLIP``, one transaction: searches wait for it, a few milliseconds),
        unless the active set holds paths the new one lacks. The new set's HNSW index is built once before
        (searches keep using the old one meanwhile). Kill point ``switch``: inside the flip, before commit."""
        with self._lock:
            if not self._table_exists("images_next"):
                return []  # flipped (or abandoned) by another process: the caller checks the record
            self.conn.execute(f"SET maintenance_work_mem = '{self.build_memory}'")
            self.conn.execute(schema.POSTGRES_NEXT_HNSW)
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                if not self._table_exists("images_next"):
                    return []
                rows = self.conn.execute(
                    "SELECT i.path FROM clipforge.images i WHERE NOT EXISTS "
                    "(SELECT 1 FROM clipforge.images_next n WHERE n.path = i.path)"
                ).fetchall()
                missing = [p for p in (from_db(r[0]) for r in rows) if p not in gone]
                if missing:
                    return missing
                kill_point("switch")
                for statement in schema.POSTGRES_FLIP:
                    self.conn.execute(statement)
                self.conn.execute(BUMP)
        return []

    # --- rows ---------------------------------------------------------------------------------------------
    def files(self, staged: bool = False) -> dict[str, Stored]:
        if not self._vector_ready or (staged and not self._table_exists("images_next")):
            return {}
        with self._lock:
            rows = self.conn.execute(
                f"SELECT path, size, mtime, sha256, taken_from IS NOT NULL FROM clipforge.{_table(staged)}"
            ).fetchall()
        return {from_db(path): Stored(size, mtime, sha, info) for path, size, mtime, sha, info in rows}

    def apply(
        self,
        upserts: Sequence[Row] = (),
        touches: Sequence[Touch] = (),
        removals: Sequence[str] = (),
        staged: bool = False,
    ) -> int:
        if not self._vector_ready:
            raise InputError(f"{self.where} has no clipforge index yet; record a model first (index some images)")
        table = f"clipforge.{_table(staged)}"
        with self._lock, self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (path, size, mtime, sha256, embedding, {', '.join(PHOTO_NAMES)}) "
                f"VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * len(PHOTO_NAMES))}) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, "
                "sha256 = excluded.sha256, embedding = excluded.embedding, indexed_at = now(), "
                + ", ".join(f"{c} = excluded.{c}" for c in PHOTO_NAMES),
                [
                    (to_db(r.path), r.size, r.mtime, r.sha256, np.asarray(r.embedding, np.float32), *_photo(r.info))
                    for r in upserts
                ],
            )
            plain = [(t.size, t.mtime, to_db(t.path)) for t in touches if t.info is None]
            if plain:
                cur.executemany(f"UPDATE {table} SET size = %s, mtime = %s WHERE path = %s", plain)
            described = [(t.size, t.mtime, *_photo(t.info), to_db(t.path)) for t in touches if t.info is not None]
            if described:
                cur.executemany(
                    f"UPDATE {table} SET size = %s, mtime = %s, "
                    + ", ".join(f"{c} = %s" for c in PHOTO_NAMES)
                    + " WHERE path = %s",
                    described,
                )
            removed = 0
            if removals:
                cur.execute(f"DELETE FROM {table} WHERE path = ANY(%s)", ([to_db(p) for p in removals],))
                removed = cur.rowcount
            if (upserts or touches or removed) and not staged:
                cur.execute("UPDATE clipforge.meta SET value = (value::bigint + 1)::text WHERE key = 'generation'")
        return removed

    # --- search -------------------------------------------------------------------------------------------
    def prepare(self, exact: bool = False) -> None:
        """Nothing to open ahead: the server holds the rows and the HNSW index."""

    def search(self, query: np.ndarray, k: int, exact: bool = False) -> list[Hit]:
        if not self._vector_ready:
            return []
        vector = np.asarray(query, np.float32)
        guard, guarded = self._guard()
        sql = f"SELECT id, path, 1 - (embedding <=> %s) FROM clipforge.images {guard}ORDER BY embedding <=> %s LIMIT %s"
        params = (vector, *guarded, vector, int(k))
        with self._lock:
            if exact:  # the planner would take the HNSW index: a sequential scan compares every row
                with self.conn.transaction():
                    self.conn.execute("SET LOCAL enable_indexscan = off")
                    rows = self.conn.execute(sql, params).fetchall()
            else:
                self._set_ef_search(max(self.ef_search, int(k)))  # HNSW returns at most ef_search rows
                rows = self.conn.execute(sql, params).fetchall()
            if not rows:
                self._check_expected()
        return [Hit(int(i), from_db(p), float(s)) for i, p, s in rows]

    def _guard(self) -> tuple[str, tuple]:
        """A WHERE clause that lets rows through only while the active model is ``expect`` (evaluated once per
        query, in the query's snapshot: a flip committed in between makes the query return nothing, not rows
        of the other model), and its parameters."""
        if self.expect is None:
            return "", ()
        return "WHERE (SELECT manifest_sha256 FROM clipforge.model WHERE id = 1) = %s ", (self.expect,)

    def _check_expected(self) -> None:
        """After a guarded query returned nothing: raise ``ModelSwitched`` when the active model changed."""
        if self.expect is None:
            return
        row = self.conn.execute("SELECT manifest_sha256 FROM clipforge.model WHERE id = 1").fetchone()
        if row is not None and row[0] != self.expect:
            raise ModelSwitched(
                f"{self.where} switched to another model (manifest {row[0][:12]}) while this search was "
                f"embedded for manifest {self.expect[:12]}; search again"
            )

    def refresh_search(self) -> None:
        """The server keeps the HNSW index up to date with every write; this only rebuilds it when a bulk load
        was killed after dropping it (the rows are there, searches were exact and slow)."""
        if self._vector_ready:
            with self._lock:
                self._build_hnsw()

    def _build_hnsw(self) -> None:
        if self.conn.execute("SELECT to_regclass(%s)", (f"clipforge.{HNSW_INDEX}",)).fetchone()[0] is None:
            # the graph built in memory, not on disk (far slower) while it fits: about 1 GB per 400k 512-d rows
            self.conn.execute(f"SET maintenance_work_mem = '{self.build_memory}'")
            self.conn.execute(CREATE_HNSW)
            self._choose_ef_search()  # building the index updated the row estimate

    def bulk_load(self, batches: Iterable[Sequence[Row]]) -> None:
        """First load of an empty index: the HNSW index is dropped, every batch COPYed in one transaction, and
        the index built once at the end (much faster than maintaining it row by row: docs/index.md). A load
        killed midway leaves committed batches and no HNSW index; ``refresh_search`` (the next import or
        indexing run) builds it."""
        if not self._vector_ready:
            raise InputError(f"{self.where} has no clipforge index yet; record a model first (index some images)")
        with self._lock:
            if self.count():
                raise InputError(f"{self.where} already holds images; bulk loads go into an empty index")
            self.conn.execute(f"DROP INDEX IF EXISTS clipforge.{HNSW_INDEX}")
            for rows in batches:
                self._copy(rows)
            self._build_hnsw()

    def _copy(self, rows: Sequence[Row]) -> None:
        copy_sql = "COPY clipforge.images (path, size, mtime, sha256, embedding) FROM STDIN WITH (FORMAT BINARY)"
        with self.conn.transaction(), self.conn.cursor() as cur:
            with cur.copy(copy_sql) as copy:
                copy.set_types(["text", "int8", "float8", "text", "vector"])
                for r in rows:
                    copy.write_row((to_db(r.path), r.size, r.mtime, r.sha256, np.asarray(r.embedding, np.float32)))
            cur.execute("UPDATE clipforge.meta SET value = (value::bigint + 1)::text WHERE key = 'generation'")

    def _choose_ef_search(self) -> None:
        """``ef_search`` for the table's size (PostgreSQL's row estimate), unless one was given."""
        if self._ef_given is not None:
            return
        estimate = self.conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'clipforge.images'::regclass")
        self.ef_search = ef_search_for(int(estimate.fetchone()[0]))

    def _set_ef_search(self, value: int) -> None:
        """A session setting, sent only when it changes (one round trip per search, not four)."""
        if getattr(self, "_ef_session", None) != value:
            self.conn.execute(f"SET hnsw.ef_search = {int(value)}")
            self._ef_session = value

    def vectors(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        if not self._vector_ready:
            return np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32)
        with self._lock:
            rows = self.conn.execute("SELECT id, path, embedding FROM clipforge.images ORDER BY id").fetchall()
            self._check_expected()  # not rows of another model (a flip in between: a few ms wide)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        matrix = np.stack([_array(r[2]) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        return ids, [from_db(r[1]) for r in rows], matrix

    def path_of(self, image_id: int) -> str | None:
        if not self._vector_ready:
            return None
        with self._lock:
            row = self.conn.execute("SELECT path FROM clipforge.images WHERE id = %s", (int(image_id),)).fetchone()
        return from_db(row[0]) if row else None

    def file_of(self, image_id: int) -> tuple[str, Stored] | None:
        if not self._vector_ready:
            return None
        with self._lock:
            row = self.conn.execute(
                "SELECT path, size, mtime, sha256 FROM clipforge.images WHERE id = %s", (int(image_id),)
            ).fetchone()
        return (from_db(row[0]), Stored(row[1], row[2], row[3])) if row else None

    def count(self, staged: bool = False) -> int:
        if not self._vector_ready or (staged and not self._table_exists("images_next")):
            return 0
        with self._lock:
            return int(self.conn.execute(f"SELECT count(*) FROM clipforge.{_table(staged)}").fetchone()[0])

    # --- photo metadata (schema version 2) ----------------------------------------------------------------
    def metadata(self, ids: Sequence[int]) -> dict[int, PhotoInfo]:
        """The stored photo metadata of rows ``ids`` (rows without it: absent)."""
        if not self._vector_ready or not len(ids):
            return {}
        with self._lock:
            rows = self.conn.execute(
                f"SELECT id, {', '.join(PHOTO_NAMES)} FROM clipforge.images "
                "WHERE taken_from IS NOT NULL AND id = ANY(%s)",
                ([int(i) for i in ids],),
            ).fetchall()
        return {int(row[0]): PhotoInfo(*row[1:]) for row in rows}

    def search_filtered(self, query: np.ndarray, k: int, where: SearchFilter, exact: bool = False) -> list[Hit]:
        """``search`` restricted by ``where`` in SQL, always scored exactly (``exact`` changes nothing): pgvector
        0.6 has no iterative index scans (an HNSW scan filtered afterwards can return fewer than ``k`` rows), so
        the HNSW index is switched off for this one query and PostgreSQL orders the rows that pass the WHERE by
        exact cosine distance."""
        if not self._vector_ready:
            return []
        conditions, params = sql_conditions(where, "postgres")
        if where.near:
            conditions.append(f"{HAVERSINE_SQL} <= %s")
            params += [where.near[0], where.near[0], where.near[1], where.near[2]]
        if self.expect is not None:
            conditions.append("(SELECT manifest_sha256 FROM clipforge.model WHERE id = 1) = %s")
            params.append(self.expect)
        vector = np.asarray(query, np.float32)
        sql = "SELECT id, path, 1 - (embedding <=> %s) FROM clipforge.images"
        sql += f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql += " ORDER BY embedding <=> %s, id LIMIT %s"
        with self._lock, self.conn.transaction():
            self.conn.execute("SET LOCAL enable_indexscan = off")
            rows = self.conn.execute(sql, (vector, *params, vector, int(k))).fetchall()
            if not rows:
                self._check_expected()
        return [Hit(int(i), from_db(p), float(s)) for i, p, s in rows]

    def info(self) -> dict:
        version = None
        with self._lock:
            if self._table_exists("meta"):
                row = self.conn.execute("SELECT value FROM clipforge.meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else None
        return {
            "backend": "postgresql",
            "db": self.where,
            "schema_version": version,
            "search": f"pgvector HNSW cosine (ef_search {self.ef_search})",
        }

    def for_writing(self) -> None:
        """Writes need nothing more than the open connection (the server checks privileges per statement)."""

    def problem(self) -> str | None:
        return f"the connection to {self.where} is closed or broken; restart" if self.conn.broken else None

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _table(staged: bool) -> str:
    return "images_next" if staged else "images"


def _check_userinfo(url: str, where: str) -> None:
    """A password holding an unencoded ``@`` is split at the wrong place by libpq (and half of it ends up in
    its messages as the host name): refused before connecting."""
    head = url.partition("://")[2].split("?", 1)[0]
    if "@" in head.rsplit("@", 1)[0]:
        raise InputError(
            f"the user or password in {where} holds an unencoded '@'; write it as %40 (or pass "
            "password=... in the query string)"
        )


def _photo(info: PhotoInfo | None) -> tuple:
    return astuple(info) if info is not None else (None,) * len(PHOTO_NAMES)


def _array(value) -> np.ndarray:
    """pgvector returns ``Vector`` objects (binary results) or numpy arrays, depending on the format."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, np.float32)
