"""Model switch without downtime (``Index(..., switch=True)``, ``clipforge index -m NEW``): the new model's vectors
go into a new set while searches answer from the old one; one transaction flips the active set; a SIGKILL at any
point leaves the old set active and the rerun resumes; the sidecar is keyed to the active set; a model folder
rebuilt in place is explained, with the command that switches."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipforge.errors import InputError
from clipforge.index import Index, ann, schema
from clipforge.index.base import ModelRecord, ModelSwitched, Row
from clipforge.index.sqlite import SqliteBackend

SRC = str(Path(__file__).parents[1] / "src")
QUERY = "a photo of a red square"
IMAGES = 48


@pytest.fixture(scope="module")
def models(exported_tiny):
    """(A, B): the tiny CLIP (16-d) and the tiny SigLIP (32-d), exported (shared with other test modules)."""
    return Path(exported_tiny["clip"]), Path(exported_tiny["siglip"])


@pytest.fixture
def photos(tmp_path):
    """IMAGES small PNGs of random colour blocks (what matters is that each model ranks them differently)."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(3)
    for i in range(IMAGES):
        folder = root / f"f{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))).save(folder / f"{i:03d}.png")
    return root


def _answer(hits) -> list[tuple[str, float]]:
    return [(h.path, round(h.score, 4)) for h in hits]


def _reference(model: Path, photos: Path, tmp_path: Path) -> list[tuple[str, float]]:
    """The answer of a clean SQLite index of ``photos`` built with ``model`` alone."""
    with Index(tmp_path / f"ref-{model.name}.db", model) as ref:
        ref.add(photos)
        return _answer(ref.search(QUERY, k=5))


def _same(got, want) -> bool:
    if [p for p, _ in got] != [p for p, _ in want]:
        return False
    return np.allclose([s for _, s in got], [s for _, s in want], atol=2e-3)


def _cli(args: list[str], **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": SRC, **env}
    command = [sys.executable, "-m", "clipforge.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def test_searches_during_a_switch_answer_from_exactly_one_model(db, models, photos, tmp_path):
    a, b = models
    want_a, want_b = _reference(a, photos, tmp_path), _reference(b, photos, tmp_path)
    assert [p for p, _ in want_a] != [p for p, _ in want_b]  # the two models rank the photos differently
    with Index(db, a) as first:
        first.add(photos)
    answers, errors, stop = [], [], threading.Event()

    def search_in_a_loop():
        with Index(db) as reader:  # no model: follows the switch
            while not stop.is_set():
                try:
                    answers.append((time.monotonic(), _answer(reader.search(QUERY, k=5))))
                except Exception as exc:  # noqa: BLE001 - every error is a failure of the test
                    errors.append(repr(exc))

    pinned = Index(db, a)  # opened with the model, as clipforge serve opens it
    thread = threading.Thread(target=search_in_a_loop)
    thread.start()
    try:
        while not answers:
            time.sleep(0.01)
        began = time.monotonic()
        with Index(db, b, switch=True) as switching:
            summary = switching.add(photos, batch_size=4)
        done = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert summary.added == IMAGES and summary.switched and "-> siglip" in summary.switched
    during = [answer for t, answer in answers if began < t < done]
    assert all(_same(answer, want_a) or _same(answer, want_b) for _, answer in answers)
    assert any(_same(answer, want_a) for answer in during), "no search answered while the switch ran"
    assert _same(answers[-1][1], want_b)  # the last ones come from the new set
    with Index(db) as after:
        assert after.record.embed_dim == 32 and "switch" not in after.stats()
        assert after.count() == IMAGES
    with pytest.raises(ModelSwitched, match="switched from .* to .*restart clipforge serve"):
        pinned.search(QUERY)
    pinned.close()
    with pytest.raises(InputError, match=r"indexed with siglip .*dim 32.*not clip .*dim 16.*clipforge index --db"):
        Index(db, a)


def test_a_second_switch_to_the_same_model_finds_it_done(models, photos, tmp_path):
    a, b = models
    db = tmp_path / "photos.db"
    with Index(db, a) as first:
        first.add(photos)
    with Index(db, b, switch=True) as one, Index(db, b, switch=True) as two:
        one.plan(photos)  # both opened while the old model was active; the first switch completes
        assert one.add(photos).switched
        summary = two.add(photos)  # an ordinary run on the new set: nothing to embed
    assert summary.switched is None and summary.added == 0 and summary.unchanged == IMAGES


def test_a_switch_covers_the_indexed_files_outside_the_given_paths(models, photos, tmp_path):
    a, b = models
    db = tmp_path / "photos.db"
    with Index(db, a) as first:
        first.add(photos)
    (photos / "f0" / "000.png").unlink()  # deleted since: left out of the new set
    with Index(db, b, switch=True) as switching:
        summary = switching.add([photos / "f1"])  # f0 and f2 come from the active set's rows
    assert summary.switched and summary.added == IMAGES - 1
    with Index(db) as after:
        assert after.count() == IMAGES - 1 and after.record.embed_dim == 32


@pytest.mark.slow
def test_sigkill_during_a_switch_keeps_the_old_set_and_the_rerun_resumes(db, models, photos, tmp_path):
    a, b = models
    want_a, want_b = _reference(a, photos, tmp_path), _reference(b, photos, tmp_path)
    assert _cli(["index", str(photos), "--db", db, "-m", str(a), "--quiet"]).returncode == 0
    switch = ["index", "--db", db, "-m", str(b), "-b", "8", "--quiet", "--json"]  # no PATHS: the indexed files
    killed = _cli(switch, CLIPFORGE_DEBUG_KILL="batch:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Index(db) as idx:
        assert idx.record.embed_dim == 16 and _same(_answer(idx.search(QUERY, k=5)), want_a)
        assert idx.stats()["switch"]["images"] == 16  # two committed batches of the new set
    killed = _cli(switch, CLIPFORGE_DEBUG_KILL="switch")  # every image embedded, killed inside the flip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Index(db) as idx:
        assert idx.record.embed_dim == 16 and _same(_answer(idx.search(QUERY, k=5)), want_a)
        assert idx.stats()["switch"]["images"] == IMAGES
    rerun = _cli(switch)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["added"] == 0 and report["unchanged"] == IMAGES and report["switched"]
    with Index(db) as idx:
        assert idx.record.embed_dim == 32 and _same(_answer(idx.search(QUERY, k=5)), want_b)
        assert "switch" not in idx.stats()


def _rebuilt_in_place(models, photos, tmp_path) -> tuple[Path, Path]:
    """A database indexed with a copy of model A, whose folder is then rebuilt at the same path."""
    folder = tmp_path / "my-model"
    shutil.copytree(models[0], folder)
    db = tmp_path / "photos.db"
    with Index(db, folder) as first:
        first.add(photos)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"] = manifest["source"] + "-rebuilt"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return db, folder


def test_a_model_folder_rebuilt_in_place_is_explained_with_the_switch_command(models, photos, tmp_path):
    db, folder = _rebuilt_in_place(models, photos, tmp_path)
    command = f"clipforge index --db {db} -m {folder.resolve()}"
    for opened in (lambda: Index(db), lambda: Index(db, folder)):
        with pytest.raises(InputError) as info:
            opened()
        message = str(info.value)
        assert f"the model folder {folder.resolve()} changed since {db} was indexed with it" in message
        assert "rebuilt in place" in message and message.endswith(command)


@pytest.mark.slow
def test_the_offered_command_switches_a_rebuilt_model_folder(models, photos, tmp_path):
    db, folder = _rebuilt_in_place(models, photos, tmp_path)
    searched = _cli(["search", QUERY, "--db", str(db)])
    assert searched.returncode != 0 and "Traceback" not in searched.stderr
    command = searched.stderr.strip().rsplit(": ", 1)[1]
    assert "changed since" in searched.stderr and command == f"clipforge index --db {db} -m {folder.resolve()}"
    switched = _cli(command.split()[1:] + ["--quiet"])  # the offered command, as given
    assert switched.returncode == 0, switched.stderr
    with Index(db) as idx:
        assert len(idx.search(QUERY, k=3)) == 3 and idx.record.source.endswith("-rebuilt")


def test_search_with_the_new_model_during_a_switch_says_it_is_under_way(models, photos, tmp_path):
    a, b = models
    db = tmp_path / "photos.db"
    with Index(db, a) as first:
        first.add(photos)
    with Index(db, b, switch=True) as switching:
        switching.plan(photos)  # the new set exists, empty
        with pytest.raises(InputError, match="switching"):
            switching.search(QUERY)
    with pytest.raises(InputError, match=r"answers with clip .* until its switch to siglip .* \(0 of about 48"):
        Index(db, b)


def test_a_version_2_database_upgrades_in_place_and_switches(models, photos, tmp_path):
    a, b = models
    db = tmp_path / "photos.db"
    with Index(db, a) as first:
        first.add(photos)
        ids = sorted(h.id for h in first.search(QUERY, k=IMAGES))
    conn = __import__("sqlite3").connect(db)
    conn.execute("DROP TABLE model_next")  # as a version-2 database holds it
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Index(db) as old:  # read as it is (opened read-only), ids kept
        assert old.stats()["schema_version"] == 2 and sorted(h.id for h in old.search(QUERY, k=IMAGES)) == ids
    with Index(db, b, switch=True) as switching:
        assert switching.add(photos).switched
    with Index(db) as idx:
        assert idx.stats()["schema_version"] == schema.SCHEMA_VERSION and idx.record.embed_dim == 32


# --- the sidecar keyed to the active set, and temporary files of killed rebuilds --------------------------------
DIM = 8


def _rows(n: int, seed: int, dim: int = DIM) -> list[Row]:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [Row(f"/photos/{i}.jpg", 1, 1.0, f"{i:064x}", v) for i, v in enumerate(x)]


def _record(name: str, dim: int) -> ModelRecord:
    return ModelRecord("clip", name, f"/models/{name}", name * 64, dim, {})


def test_the_new_sets_sidecar_is_published_with_the_flip(tmp_path):
    db = tmp_path / "photos.db"
    backend = SqliteBackend(db, ann_min_rows=100)
    backend.set_model_record(_record("a", DIM))
    backend.apply(_rows(300, 0))
    backend.refresh_search()
    assert ann.Graph.open(db, backend._stamp()) is not None
    backend.start_next(_record("b", 12))
    new = _rows(300, 1, dim=12)
    backend.apply(new[:200], staged=True)
    assert backend.switch(set()) == [f"/photos/{i}.jpg" for i in range(200, 300)]  # not flipped: rows missing
    assert backend.model_record().manifest_sha256 == "a" * 64 and ann.Graph.open(db, backend._stamp()) is not None
    backend.apply(new[200:], staged=True)
    assert backend.switch(set()) == []
    stamp = backend._stamp()
    assert stamp.manifest_sha256 == "b" * 64 and stamp.dim == 12
    assert ann.Graph.open(db, stamp) is not None  # built before the flip, published right after it
    hits = backend.search(new[7].embedding, 1)
    assert hits[0].path == "/photos/7.jpg" and hits[0].score == pytest.approx(1, abs=1e-5)
    assert not list(tmp_path.glob(".*.tmp"))


KILLED = """
import sys
import numpy as np
from clipforge.index.base import ModelRecord, Row
from clipforge.index.sqlite import SqliteBackend
backend = SqliteBackend(sys.argv[1], ann_min_rows=100)
if sys.argv[2] == "rebuild":
    backend.refresh_search()
else:
    x = np.random.default_rng(1).standard_normal((300, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    backend.start_next(ModelRecord("clip", "b", "/models/b", "b" * 64, 12, {}))
    backend.apply([Row(f"/photos/{i}.jpg", 1, 1.0, f"{i:064x}", v) for i, v in enumerate(x)], staged=True)
    backend.switch(set())
"""


@pytest.mark.parametrize("stage", ["ann", "switch"])
def test_temporary_files_of_a_killed_rebuild_or_switch_are_swept_at_the_next_open(tmp_path, stage):
    db = tmp_path / "photos.db"
    backend = SqliteBackend(db, ann_min_rows=100)
    backend.set_model_record(_record("a", DIM))
    backend.apply(_rows(300, 0))
    backend.close()
    env = {**os.environ, "PYTHONPATH": SRC, "CLIPFORGE_DEBUG_KILL": stage}
    what = "rebuild" if stage == "ann" else "switch"
    run = subprocess.run([sys.executable, "-c", KILLED, str(db), what], env=env, capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    left = list(tmp_path.glob(".photos.db.ann.*.tmp"))
    assert len(left) == 1  # the killed process's graph, never published
    reader = SqliteBackend(db, ann_min_rows=100)
    assert not left[0].exists()
    assert reader.model_record().manifest_sha256 == "a" * 64  # a switch killed in its flip changed nothing
    reader.refresh_search()
    assert ann.Graph.open(db, reader._stamp()) is not None


def test_a_rebuild_in_progress_keeps_its_temporary_file(tmp_path):
    db = tmp_path / "photos.db"
    backend = SqliteBackend(db, ann_min_rows=100)
    backend.set_model_record(_record("a", DIM))
    backend.apply(_rows(300, 0))
    backend.conn.execute("BEGIN")
    try:
        pending = ann.write(db, backend._stamp(), backend._chunks("images"))
    finally:
        backend.conn.execute("COMMIT")
    assert ann.sweep(db) == 0 and Path(pending.tmp).exists()  # its writer lives and holds the lock
    ann.publish(db, pending)
    assert ann.Graph.open(db, backend._stamp()) is not None and ann.sweep(db) == 0


def test_a_search_embedded_for_the_old_model_is_refused_after_the_flip_never_compared(db):
    """The back-end's own guard (what catches a flip between the index's check and its query): with ``expect``
    set to the old model, every search path raises ``ModelSwitched`` instead of comparing 8-d queries with 12-d
    rows (or, at equal dims, vectors of two models)."""
    from clipforge.index import SearchFilter, open_backend

    writer = open_backend(db)
    writer.set_model_record(_record("a", DIM))
    writer.apply(_rows(50, 0))
    reader = open_backend(db)
    try:
        reader.expect = "a" * 64
        query = _rows(1, 5)[0].embedding
        assert len(reader.search(query, 3)) == 3
        writer.start_next(_record("b", 12))
        writer.apply(_rows(50, 1, dim=12), staged=True)
        assert len(reader.search(query, 3, exact=True)) == 3  # the old set still answers
        assert writer.switch(set()) == []
        folder = SearchFilter(folder="/photos")
        for search in (
            lambda: reader.search(query, 3),
            lambda: reader.search(query, 3, exact=True),
            lambda: reader.search_filtered(query, 3, folder),
        ):
            with pytest.raises(ModelSwitched, match="switched to another model"):
                search()
        reader.expect = "b" * 64
        assert len(reader.search(_rows(1, 5, dim=12)[0].embedding, 3)) == 3
    finally:
        writer.close()
        reader.close()


def test_a_server_answers_from_the_old_set_until_the_flip_then_asks_for_a_restart(models, photos, tmp_path):
    from fastapi.testclient import TestClient

    from clipforge.runtime.model import ZeroShotModel
    from clipforge.serve import ServeSettings, create_app

    a, b = models
    db = tmp_path / "photos.db"
    model = ZeroShotModel.from_onnx(a, threads=1)
    with Index(db, model) as first:
        first.add(photos)
    served = Index(db, model)
    with TestClient(create_app(model, served, ServeSettings())) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        switching = Index(db, b, switch=True)
        switching.plan(photos)  # the new set begun: the server still answers from the old one
        assert client.post("/v1/search", json={"text": QUERY, "k": 3}).status_code == 200
        switching.add(photos)
        switching.close()
        reply = client.post("/v1/search", json={"text": QUERY, "k": 3})
        assert reply.status_code == 409 and "restart clipforge serve" in reply.json()["error"]["message"]
    served.close()
