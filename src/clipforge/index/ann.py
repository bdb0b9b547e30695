"""The approximate-nearest-neighbour sidecar of a SQLite index: a usearch HNSW graph (int8 vectors, cosine)
in a file beside the database (``photos.db.ann``) and a small JSON header (``photos.db.ann.json``) that says
which state of the database it was built from: its ``generation``, row count, dimension, the model's manifest
sha256, the quantisation, usearch's version and the graph file's inode. The graph is memory-mapped
(``Index.restore(view=True)``): a fresh process answers without reading every vector.

The sidecar is never trusted beyond its header: a header that does not match the database's current state
(any write bumps ``generation``), a graph file that is not the one the header describes, or a file usearch
cannot read is stale, and the caller rebuilds it or searches exactly. A rebuild writes the graph to a
temporary file, removes the header, renames the graph into place and writes the header last (temp + rename),
so a process killed at any point leaves either a valid pair or a graph without a header (stale), and perhaps
its temporary file: each is held under an ``flock`` by its writer, and ``sweep`` (run when a database is opened)
deletes those no living process holds. A model switch writes the new set's graph before the flip and publishes
it after (``write`` / ``publish``), so searches go through a graph right after the switch too.

The graph returns candidates only; the SQLite back-end re-scores them exactly from the stored float32 rows.
``docs/index.md`` has the measurements that chose usearch, int8 and the parameters below."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from clipforge._faults import kill_point
from clipforge.errors import require

FORMAT = 1
QUANTISATION = "i8"  # recall@10 after exact re-scoring: docs/index.md
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 64, 400
EXACT_CANDIDATES = 4096  # an allowed-id set this small is searched exactly, not through the graph


@dataclass(frozen=True)
class Stamp:
    """The state of the database a sidecar was built from; a sidecar is used only when all of it matches."""

    generation: int
    last_id: int  # with generation: a database replaced by another one at the same path reads as stale
    dim: int
    manifest_sha256: str


def files(db: Path) -> tuple[Path, Path]:
    """The graph and header files of database ``db``."""
    return Path(f"{db}.ann"), Path(f"{db}.ann.json")


class Graph:
    """An opened (memory-mapped) sidecar graph; ``candidates`` returns row ids, nearest first."""

    def __init__(self, index, stamp: Stamp):
        self.index, self.stamp = index, stamp

    @classmethod
    def open(cls, db: Path, stamp: Stamp) -> Graph | None:
        """The sidecar of ``db`` if it was built from exactly ``stamp``; None when missing, stale or corrupt."""
        graph, header = files(db)
        try:
            meta = json.loads(header.read_text())
            if {k: v for k, v in meta.items() if k != "count"} != _header(stamp, os.stat(graph).st_ino):
                return None
            usearch = _usearch()
            # no key -> slot table: a search returns the keys stored in the nodes, and building the table walks
            # every node (1M rows: 0.11-0.19 s of a fresh search, holding the GIL, against 0.05 s without)
            index = usearch.Index.restore(str(graph), view=True, enable_key_lookups=False)
        except (OSError, ValueError, RuntimeError, TypeError):
            return None
        if index is None or len(index) != meta["count"] or index.ndim != stamp.dim:
            return None
        return cls(index, stamp)

    def candidates(self, query: np.ndarray, count: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Up to ``count`` row ids nearest to ``query``. With ``allowed`` (row ids), only those: a small set
        is returned whole (the caller scores it exactly); a larger one is searched with an over-fetch that
        grows until ``count`` allowed ids are found (or the set is returned whole)."""
        size = len(self.index)
        if allowed is None:
            return self._search(query, min(count, size))
        allowed = np.asarray(allowed, np.int64)
        if len(allowed) <= max(EXACT_CANDIDATES, count):
            return allowed
        fetch = count * max(2, int(np.ceil(size / len(allowed))))
        while fetch < size // 2:
            keys = self._search(query, fetch)
            keep = keys[np.isin(keys, allowed)]
            if len(keep) >= count:
                return keep[:count]
            fetch *= 4
        return allowed

    def _search(self, query: np.ndarray, count: int) -> np.ndarray:
        self.index.expansion_search = max(EXPANSION_SEARCH, count)
        return np.asarray(self.index.search(np.asarray(query, np.float32), count).keys, np.int64)


@dataclass
class Pending:
    """A graph written to its temporary file (locked while this process lives), not yet published."""

    tmp: str
    fd: int
    stamp: Stamp
    inode: int
    count: int

    def discard(self) -> None:
        """Remove the temporary file (if not published) and release its lock."""
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def build(db: Path, stamp: Stamp, count: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
    """Build the sidecar of ``db`` from ``chunks`` of (row ids [n], float32 vectors [n, D]) read at ``stamp``,
    and publish it (graph renamed into place, header written last)."""
    publish(db, write(db, stamp, chunks))


def write(db: Path, stamp: Stamp, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> Pending:
    """Build a graph from ``chunks`` into a temporary file beside ``db`` (held under an ``flock`` until published
    or discarded, so ``sweep`` tells it from the leftover of a killed process). Kill point ``ann``: the graph is
    written, not yet published."""
    usearch = _usearch()
    index = usearch.Index(
        ndim=stamp.dim, metric="cos", dtype=QUANTISATION, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD
    )
    for ids, vectors in chunks:
        if len(ids):
            index.add(np.asarray(ids, np.uint64), np.asarray(vectors, np.float32))
    graph, _ = files(db)
    fd, tmp = _locked_temp(graph)
    pending = Pending(tmp, fd, stamp, 0, len(index))
    try:
        index.save(tmp)
        os.chmod(tmp, stat.S_IMODE(os.stat(db).st_mode))  # readable by whoever may read the database
        pending.inode = os.stat(tmp).st_ino  # the header names this file: another rebuild's graph is stale
        kill_point("ann")
    except BaseException:
        pending.discard()
        raise
    return pending


def publish(db: Path, pending: Pending) -> None:
    """Rename a written graph into place (the header removed first, written last), then release it."""
    graph, header = files(db)
    try:
        header.unlink(missing_ok=True)  # from here to the header's rename the pair reads as stale
        os.replace(pending.tmp, graph)
        meta = {**_header(pending.stamp, pending.inode), "count": pending.count}
        _write_atomic(header, json.dumps(meta, sort_keys=True), db)
    finally:
        pending.discard()


def sweep(db: Path) -> int:
    """Delete the temporary files that killed rebuilds left beside ``db`` (a file whose ``flock`` can be taken
    has no living writer); returns how many. A rebuild in progress holds its lock and is left alone."""
    graph, _ = files(db)
    removed = 0
    for path in graph.parent.glob(f".{glob.escape(graph.name)}.*.tmp"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            removed += 1
        except OSError:
            pass  # locked: a living rebuild's file
        finally:
            os.close(fd)
    return removed


def _locked_temp(target: Path) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, tmp


def remove(db: Path) -> None:
    """Delete the sidecar (header first)."""
    for path in reversed(files(db)):
        path.unlink(missing_ok=True)


def _usearch():
    """``usearch.index``, imported after onnxruntime: onnxruntime 1.31 imported after usearch 2.26 (its numkong
    kernels) crashes the process (SIGSEGV), and a search opens the sidecar before it loads the text encoder."""
    import onnxruntime  # noqa: F401  (a core dependency; the order is the point)

    return require("usearch.index", "index")


def _header(stamp: Stamp, inode: int) -> dict:
    _usearch()
    return {
        "format": FORMAT,
        **asdict(stamp),
        "quantisation": QUANTISATION,
        "connectivity": CONNECTIVITY,
        "usearch": sys.modules["usearch"].__version__,
        "inode": inode,
    }


def _write_atomic(path: Path, text: str, like: Path) -> None:
    fd, tmp = _locked_temp(path)
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(like).st_mode))
        with open(fd, "w", closefd=False) as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
