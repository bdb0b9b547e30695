"""The embedding index on both back-ends (SQLite file, PostgreSQL + pgvector from the pgserver wheel): indexing
a folder of generated shapes (+ unreadable files), text and image search with the trained tiny CLIP,
incremental updates, model records, kill-safety."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import InputError
from clipforge.index import Batch, Hit, Index
from clipforge.index.walker import Decoder

BAD_FILES = {
    "truncated.jpg": None,
    "notes.png": b"not an image at all",
    "empty.jpg": b"",
    "noise.webp": bytes(range(256)) * 4,
}
READABLE = 200  # the shapes test split: 20 classes x 10


@pytest.fixture
def photos(shapes_dataset, tmp_path):
    """A copy of the shapes test split (<class>/<i>.png|jpg) plus a few unreadable files."""
    root = tmp_path / "photos"
    shutil.copytree(shapes_dataset.folder("test"), root)
    jpeg = next(root.rglob("*.jpg")).read_bytes()
    BAD_FILES["truncated.jpg"] = jpeg[: len(jpeg) // 2]
    for name, data in BAD_FILES.items():
        (root / "bad").mkdir(exist_ok=True)
        (root / "bad" / name).write_bytes(data)
    return root


def _classes(hits: list[Hit]) -> list[str]:
    return [Path(h.path).parent.name for h in hits]


def test_index_then_search_by_text_and_image(db, photos, loaded_model):
    with Index(db, loaded_model) as idx:
        summary = idx.add([photos])
        assert (summary.added, summary.updated, summary.removed) == (READABLE, 0, 0)
        assert sorted(Path(p).name for p, _ in summary.unreadable) == sorted(BAD_FILES)
        assert all("unreadable" in reason for _, reason in summary.unreadable)
        assert idx.stats()["images"] == READABLE
        for label in ("red circle", "blue square", "yellow triangle"):
            hits = idx.search(f"a photo of a {label}.", k=5)
            assert len(hits) == 5 and _classes(hits).count(label) >= 4, (label, _classes(hits))
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        query = photos / "green cross" / "0.png"
        hits = idx.search(image=query, k=3)
        assert hits[0].path == str(query) and hits[0].score == pytest.approx(1.0, abs=1e-4)
        # most neighbours of an image share its class, over all 20 (one pair, e.g. green cross / green circle,
        # may be confused by the tiny model, depending on the CPU it was trained on)
        first = {c.name: sorted(c.iterdir())[0] for c in photos.iterdir() if c.is_dir() and c.name != "bad"}
        same = [_classes(idx.search(image=f, k=3)).count(c) / 3 for c, f in first.items()]
        assert len(same) == 20 and np.mean(same) >= 0.8, same
        assert idx.path_of(hits[1].id) == hits[1].path and idx.path_of(10**9) is None
        path, stored = idx.file_of(hits[0].id)  # what /v1/images checks a file against before serving it
        assert (path, stored.size, stored.mtime) == (str(query), query.stat().st_size, query.stat().st_mtime)
        assert stored.sha256 == hashlib.sha256(query.read_bytes()).hexdigest() and idx.file_of(10**9) is None
        assert idx.search(image=[query], text="a photo of a green cross.", k=1)[0].path.find("green cross") > 0
        cut = idx.search("a photo of a red circle.", k=50, min_score=0.5)
        assert cut and all(h.score >= 0.5 for h in cut) and len(cut) < 50


def test_changed_and_deleted_files_are_picked_up(db, photos, loaded_model):
    with Index(db, loaded_model) as idx:
        idx.add([photos])
        changed, touched, deleted = (
            photos / "red circle" / "0.png",
            photos / "red circle" / "1.png",
            photos / "red square" / "0.png",
        )
        shutil.copyfile(photos / "blue cross" / "0.png", changed)  # now a blue cross
        os.utime(touched, (time.time() + 5, time.time() + 5))  # same content, new mtime
        deleted.unlink()
        second = idx.add([photos])
        assert (second.added, second.updated, second.removed, second.unchanged) == (0, 1, 1, READABLE - 2)
        assert idx.stats()["images"] == READABLE - 1
        hits = idx.search(image=photos / "blue cross" / "0.png", k=2)
        assert {h.path for h in hits} == {str(photos / "blue cross" / "0.png"), str(changed)}
        third = idx.add([photos])
        assert (third.added, third.updated, third.removed, third.unchanged) == (0, 0, 0, READABLE - 1)
        assert idx.remove([photos / "red circle"]) == 10 and idx.stats()["images"] == READABLE - 11


def test_a_different_model_is_refused_and_the_recorded_one_is_reused(db, photos, index_model, tmp_path):
    with Index(db, index_model) as idx:
        idx.add([photos / "red circle"])
    other = tmp_path / "other"
    shutil.copytree(index_model, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source"] = "someone/other-clip"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"indexed with clip .*trained.*not clip someone/other-clip"):
        Index(db, other)
    with Index(db) as idx:  # the model comes from the database's record
        assert Path(idx.model.folder) == Path(index_model).resolve()
        assert len(idx.search("a photo of a red circle.", k=3)) == 3


def test_classify_from_stored_vectors_matches_the_model(db, photos, loaded_model):
    labels = ["red circle", "blue square", "green cross"]
    files = sorted((photos / "green cross").iterdir())[:4]
    with Index(db, loaded_model) as idx:
        idx.add(files, exact_decode=True)
        rows = {r["path"]: r for r in idx.classify(labels, top_k=2)}
    direct = loaded_model.classify(files, labels, top_k=2)
    for path, expected in zip(files, direct):
        got = rows[str(path)]["predictions"]
        assert [p["label"] for p in got] == [p["label"] for p in expected]
        np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)


def test_dedup_groups_copies(db, photos, loaded_model):
    original = photos / "purple square" / "2.png"
    shutil.copyfile(original, photos / "copy-of-2.png")
    with Index(db, loaded_model) as idx:
        idx.add([photos])
        groups = idx.duplicates(threshold=0.9999)
    paths = [{h.path for h in g} for g in groups]
    assert {str(original), str(photos / "copy-of-2.png")} in [
        p & {str(original), str(photos / "copy-of-2.png")} for p in paths
    ]
    assert sum(len(g) for g in groups) < READABLE / 2


def test_upsert_is_idempotent_and_checks_dims(db, loaded_model):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, loaded_model.manifest.embed_dim)).astype(np.float32)
    rows = [(f"/x/{i}.jpg", 10 + i, 1.5, f"sha{i}", v) for i, v in enumerate(vectors)]
    with Index(db, loaded_model) as idx:
        idx.upsert(rows)
        idx.upsert(rows)
        assert idx.stats()["images"] == 3
        hit = idx.search_vector(vectors[1] * 3, k=1)[0]
        assert hit.path == "/x/1.jpg" and hit.score == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(InputError, match="dim"):
            idx.upsert([("/x/bad.jpg", 1, 1.0, "s", np.zeros(3, np.float32))])


@pytest.mark.slow
def test_postgres_ef_search_follows_the_row_estimate_unless_given(pg_url, loaded_model):
    from clipforge.index.postgres import ef_search_for
    from clipforge.testing.postgres import fresh_database

    assert ef_search_for(-1) == ef_search_for(100_000) == 100 and ef_search_for(1_000_000) == 400
    url = fresh_database(pg_url)
    vectors = np.random.default_rng(0).normal(size=(3, loaded_model.manifest.embed_dim)).astype(np.float32)
    with Index(url, loaded_model) as idx:
        idx.upsert([(f"/x/{i}.jpg", 10, 1.5, f"sha{i}", v) for i, v in enumerate(vectors)])
    with Index(url, loaded_model) as idx, Index(url, loaded_model, ef_search=37) as given:
        assert idx.backend.ef_search == 100 and given.backend.ef_search == 37
        assert "ef_search 37" in given.stats()["search"]
        assert given.search_vector(vectors[2], k=1)[0].path == "/x/2.jpg"
        with idx.backend.conn.transaction():  # the planner's row estimate of a large library (superuser here)
            idx.backend.conn.execute("UPDATE pg_class SET reltuples = 2e6 WHERE oid = 'clipforge.images'::regclass")
    with Index(url, loaded_model) as idx:
        assert idx.backend.ef_search == 400


def test_the_public_steps_by_hand_equal_add_and_search(photos, loaded_model, tmp_path):
    """What every engine calls: ``plan``, ``store`` of decoded files, ``store`` of removals and ``query`` with
    embeddings give what ``add`` and ``search`` give."""
    query = "a photo of a red circle."
    with Index(tmp_path / "steps.db", loaded_model) as steps, Index(tmp_path / "add.db", loaded_model) as added:
        added.add([photos])
        plan = steps.plan([photos])
        assert (len(plan.read), plan.remove, plan.unchanged) == (READABLE + len(BAD_FILES), [], 0)
        decoder = Decoder(loaded_model.manifest.image, exact=False)
        try:
            decoded = [future.result() for future in decoder.submit(plan.read)]
        finally:
            decoder.close()
        counts = steps.store(Batch(decoded, plan.known))
        assert (counts.added, counts.updated, len(counts.unreadable)) == (READABLE, 0, len(BAD_FILES))
        text = list(loaded_model.embed_texts([query]))
        got, want = steps.query(text=text, k=5), added.search(query, k=5)
        assert [(h.path, round(h.score, 4)) for h in got] == [(h.path, round(h.score, 4)) for h in want]
        gone = next(p for p in sorted(photos.rglob("*.png")) if "bad" not in p.parts)
        gone.unlink()
        again = steps.plan([photos])
        assert (again.remove, again.unchanged) == ([str(gone)], READABLE - 1)
        assert steps.store(Batch(removals=again.remove)).removed == 1 and steps.count() == READABLE - 1


def test_without_a_model_a_fresh_database_is_an_error(db):
    with pytest.raises(InputError, match="records no model|does not exist"):
        Index(db)


def _cli(args: list[str], **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), **env}
    return subprocess.run(
        [sys.executable, "-m", "clipforge.cli.main", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_sigkill_after_the_first_batch_then_rerun_equals_an_uninterrupted_run(db, photos, index_model, tmp_path):
    args = ["index", str(photos), "--db", db, "-m", str(index_model), "-b", "32", "--quiet"]
    killed = _cli(args, CLIPFORGE_DEBUG_KILL="batch:1")
    assert killed.returncode == -9, killed.stderr
    with Index(db) as idx:
        first = 32 - len(BAD_FILES)  # the first batch: bad/ sorts first, so it holds the unreadable files
        assert idx.stats()["images"] == first  # exactly the first committed batch
    rerun = _cli(args + ["--json"])
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["added"] == READABLE - first
    clean = str(tmp_path / "clean.db")
    with Index(clean, index_model) as reference, Index(db) as idx:
        reference.add([photos])
        _, paths, _ = idx.backend.vectors()
        assert len(paths) == len(set(paths)) == READABLE
        for query in ("a photo of a red circle.", "a photo of a yellow cross."):
            got, want = idx.search(query, k=10), reference.search(query, k=10)
            assert [h.path for h in got] == [h.path for h in want]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-4)


def test_sqlite_search_runs_while_a_writer_is_in_a_transaction(tmp_path, photos, loaded_model):
    db = tmp_path / "wal.db"
    with Index(db, loaded_model) as writer:
        writer.add([photos / "red circle"])
        assert writer.backend.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.backend.conn.execute("BEGIN IMMEDIATE")
        writer.backend.conn.execute("DELETE FROM images")
        with Index(db, loaded_model) as reader:  # not blocked; sees the last committed state
            assert len(reader.search("a photo of a red circle.", k=20)) == 10
        writer.backend.conn.execute("COMMIT")
        with Index(db, loaded_model) as reader:
            assert reader.search("a photo of a red circle.") == []


def test_meanwhile_returns_the_threads_result_and_raises_either_error():
    import threading

    from clipforge.index.api import meanwhile

    seen = []
    assert meanwhile(lambda: threading.current_thread().name, lambda: seen.append(1)) == "clipforge-embed"
    assert seen == [1]
    with pytest.raises(ValueError, match="work"):
        meanwhile(lambda: (_ for _ in ()).throw(ValueError("work")), lambda: None)
    finished = []

    def slow() -> str:
        import time

        time.sleep(0.05)
        finished.append(True)
        return "done"

    with pytest.raises(KeyError):
        meanwhile(slow, lambda: {}["missing"])
    assert finished == [True]  # the other thread's error waits for the work to end
