"""The SQLite index's approximate sidecar (``clipforge.index.ann``): built beside the database, used only when it
matches the database's generation, rebuilt or bypassed otherwise, restricted to allowed ids, kill-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.index import ann
from clipforge.index.base import ModelRecord, Row
from clipforge.index.sqlite import QUIET_SECONDS, SqliteBackend

SRC = str(Path(__file__).parents[1] / "src")
DIM = 32


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors of low intrinsic dimension (as photo embeddings are, more or less): 6 latent factors mapped
    into DIM dimensions, a little noise; on these the graph finds the exact top 10."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).standard_normal((6, DIM))
    x = rng.standard_normal((n, 6)) @ mixing + 0.05 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fill(db: Path, vectors: np.ndarray, start: int = 0, ann_min_rows: int = 100) -> SqliteBackend:
    backend = SqliteBackend(db, ann_min_rows=ann_min_rows)
    backend.set_model_record(ModelRecord("clip", "test", "/nowhere", "f" * 64, DIM, {}))
    rows = [Row(f"/photos/{start + i}.jpg", 1, 1.0, f"{start + i:064x}", v) for i, v in enumerate(vectors)]
    backend.apply(rows)
    return backend


def _ids(hits) -> list[int]:
    return [h.id for h in hits]


def _queries(n: int = 20) -> np.ndarray:
    return _vectors(n, seed=7)


def _recall(backend: SqliteBackend, queries: np.ndarray, k: int = 10) -> float:
    """Mean recall@k of the backend's search against its exact search (an approximate graph may miss a
    neighbour now and then: the target is 0.95, docs/index.md)."""
    found = [set(_ids(backend.search(q, k))) & set(_ids(backend.search(q, k, exact=True))) for q in queries]
    return float(np.mean([len(f) / k for f in found]))


def test_searches_through_the_sidecar_equal_the_exact_search(tmp_path):
    db = tmp_path / "photos.db"
    backend = _fill(db, _vectors(2000))
    backend.refresh_search()
    graph, header = ann.files(db)
    assert graph.is_file() and json.loads(header.read_text())["count"] == 2000
    for q in _queries():
        approx, exact = backend.search(q, 10), backend.search(q, 10, exact=True)
        scores = {h.id: h.score for h in exact}
        for hit in approx:  # re-scored exactly: the same cosine as the exact search where both found the image
            assert scores.get(hit.id, hit.score) == pytest.approx(hit.score, abs=1e-6)
        assert [h.score for h in approx] == sorted((h.score for h in approx), reverse=True)
    assert _recall(backend, _queries()) >= 0.95
    assert backend.info()["search"].startswith("usearch")


def test_a_write_makes_the_sidecar_stale_and_the_next_search_rebuilds_it(tmp_path):
    db = tmp_path / "photos.db"
    backend = _fill(db, _vectors(1000))
    backend.refresh_search()
    before = json.loads(ann.files(db)[1].read_text())["generation"]
    newcomer = _queries(1)[0]
    backend.apply([Row("/photos/new.jpg", 1, 1.0, "e" * 64, newcomer)])
    fresh = SqliteBackend(db, ann_min_rows=100)  # another process: it must not trust the old graph
    hits = fresh.search(newcomer, 5)  # written just now (an indexing run may go on): exact, no rebuild
    assert hits[0].path == "/photos/new.jpg" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert json.loads(ann.files(db)[1].read_text())["generation"] == before
    quiet = time.time() - QUIET_SECONDS - 1
    os.utime(f"{db}-wal", (quiet, quiet))  # no write for a while: the next search rebuilds
    hits = fresh.search(newcomer, 5)
    assert hits[0].path == "/photos/new.jpg" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    header = json.loads(ann.files(db)[1].read_text())
    assert header["generation"] == before + 1 and header["count"] == 1001


@pytest.mark.parametrize("damage", ["garbage graph", "foreign graph", "no header"])
def test_a_damaged_sidecar_is_never_trusted(tmp_path, damage):
    db = tmp_path / "photos.db"
    backend = _fill(db, _vectors(1500))
    backend.refresh_search()
    graph, header = ann.files(db)
    if damage == "garbage graph":
        size = graph.stat().st_size
        with open(graph, "r+b") as fh:  # same inode, same size, content destroyed
            fh.write(os.urandom(size))
    elif damage == "foreign graph":  # a graph of other vectors renamed over it: the header names another inode
        other = tmp_path / "other.db"
        _fill(other, _vectors(1500, seed=3)).refresh_search()
        os.replace(ann.files(other)[0], graph)
    else:
        header.unlink()
    reader = SqliteBackend(db, ann_min_rows=100)
    assert ann.Graph.open(db, reader._stamp()) is None or damage == "garbage graph"
    assert _recall(reader, _queries(5)) >= 0.95


def test_a_small_index_searches_exactly_and_keeps_no_sidecar(tmp_path):
    db = tmp_path / "photos.db"
    backend = _fill(db, _vectors(300), ann_min_rows=100)
    backend.refresh_search()
    assert ann.files(db)[0].exists()
    backend.ann_min_rows = 1000
    backend.refresh_search()  # now below the threshold: the leftover sidecar goes
    assert not any(p.exists() for p in ann.files(db))
    assert backend.info()["search"].startswith("numpy exact")
    assert backend.approximate(_queries(1)[0], 5) is None


def test_allowed_ids_restrict_the_candidates_exactly_or_by_over_fetch(tmp_path):
    db = tmp_path / "photos.db"
    vectors = _vectors(3000)
    backend = _fill(db, vectors)
    backend.refresh_search()
    graph = ann.Graph.open(db, backend._stamp())
    ids = np.arange(1, 3001)
    small = ids[::50]  # 60 ids: returned whole, scored exactly by the caller
    assert sorted(graph.candidates(_queries(1)[0], 10, small)) == sorted(small)
    large = ids[ids % 3 != 0]  # 2000 ids: over-fetch, only allowed ids come back
    old, ann.EXACT_CANDIDATES = ann.EXACT_CANDIDATES, 100
    try:
        recall = []
        for q in _queries():
            found = graph.candidates(q, 10, large)
            assert np.isin(found, large).all() and len(found) == 10
            scores = vectors[large - 1] @ q
            truth = large[np.argsort(-scores)[:10]]
            recall.append(len(set(found) & set(truth)) / 10)
            hits = backend.approximate(q, 10, large)
            assert set(_ids(hits)) <= set(large.tolist())
        assert np.mean(recall) >= 0.95
    finally:
        ann.EXACT_CANDIDATES = old


KILLED_REBUILD = """
import sys
from clipforge.index.sqlite import SqliteBackend
SqliteBackend(sys.argv[1], ann_min_rows=100).refresh_search()
"""


@pytest.mark.slow
def test_sigkill_during_a_rebuild_leaves_searches_equal_to_exact_after_a_rerun(tmp_path):
    db = tmp_path / "photos.db"
    backend = _fill(db, _vectors(2000))
    backend.refresh_search()
    backend.apply([Row("/photos/late.jpg", 1, 1.0, "d" * 64, _queries(1)[0])])  # stale now
    backend.close()
    env = {**os.environ, "PYTHONPATH": SRC, "CLIPFORGE_DEBUG_KILL": "ann"}
    run = subprocess.run([sys.executable, "-c", KILLED_REBUILD, str(db)], env=env, capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    reader = SqliteBackend(db, ann_min_rows=100)
    assert ann.Graph.open(db, reader._stamp()) is None  # the killed rebuild published nothing
    del env["CLIPFORGE_DEBUG_KILL"]
    rerun = subprocess.run([sys.executable, "-c", KILLED_REBUILD, str(db)], env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert ann.Graph.open(db, reader._stamp()) is not None
    assert _recall(reader, _queries()) >= 0.95
    assert reader.search(_queries(1)[0], 1)[0].path == "/photos/late.jpg"


def test_loading_a_model_after_opening_the_sidecar_does_not_crash():
    """A search opens the sidecar (usearch) before it loads the text encoder (onnxruntime); in the other order
    than onnxruntime-first the process dies with SIGSEGV. Run in a fresh interpreter, as a CLI search is."""
    code = "from clipforge.index import ann; ann._usearch(); import onnxruntime; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-500:])
