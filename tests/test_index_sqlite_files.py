"""The SQLite index file as the file system holds it: a read-only database (and folder) is searched without
writing, indexing into a read-only file is one line, another application's database is refused unchanged, and a
database deleted or replaced while open is detected (library and server)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.cli.main import main
from clipforge.index import Index

SRC = str(Path(__file__).parents[1] / "src")


def _rows(n: int, dim: int, seed: int, prefix: str = "/photos") -> list[tuple]:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return [(f"{prefix}/{i}.png", 100 + i, 1.0 + i, f"{i:064x}", v) for i, v in enumerate(vectors)]


def _filled(path, model, seed: int = 0, prefix: str = "/photos") -> None:
    with Index(path, model) as idx:
        idx.upsert(_rows(5, model.manifest.embed_dim, seed, prefix))


def _clipforge_bound_by_modes(args: list[str]) -> subprocess.CompletedProcess:
    """The CLI in a process that file modes bind: as root, without the capabilities that override them."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file modes cannot be enforced")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "clipforge.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def shared_folder(tmp_path):
    """A folder the test makes read-only; writable again at the end so it can be removed."""
    folder = tmp_path / "ro"
    folder.mkdir()
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.slow
def test_a_read_only_database_in_a_read_only_folder_is_searched_and_not_indexed_into(
    shared_folder, index_model, shapes_dataset
):
    model = shutil.copytree(index_model, shared_folder / "model")
    photos = shutil.copytree(shapes_dataset.folder("test") / "red circle", shared_folder / "photos")
    db = shared_folder / "photos.db"
    assert main(["index", str(photos), "--db", str(db), "-m", str(model), "--quiet"]) == 0
    for path in [*shared_folder.rglob("*"), shared_folder]:
        path.chmod(path.stat().st_mode & ~0o222 | 0o444 | (0o111 if path.is_dir() else 0))
    before = db.read_bytes()
    found = _clipforge_bound_by_modes(["search", "a photo of a red circle.", "--db", str(db), "--json", "-k", "3"])
    assert found.returncode == 0, found.stderr
    assert found.stdout.count('"path"') == 3
    refused = _clipforge_bound_by_modes(["index", str(photos), "--db", str(db), "--quiet"])
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "read-only" in line and str(db) in line, line
    assert "unexpected" not in line
    assert db.read_bytes() == before and sorted(p.name for p in shared_folder.iterdir()) == [
        "model",
        "photos",
        "photos.db",
    ]


def test_another_applications_database_is_refused_unchanged(tmp_path, index_model, capsys):
    other = tmp_path / "other_app.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.close()
    before = other.read_bytes()
    for args in (
        ["search", "x", "--db", str(other)],
        ["dedup", "--db", str(other)],
        ["index", str(tmp_path), "--db", str(other), "-m", str(index_model), "--quiet"],
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not a clipforge index" in err and str(other) in err, err
        assert other.read_bytes() == before, args
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other_app.sqlite"], args


def test_reading_a_missing_database_creates_nothing_until_the_first_write(tmp_path, loaded_model, capsys):
    db = tmp_path / "new.db"
    assert main(["search", "a red circle", "--db", str(db), "-m", str(loaded_model.folder)]) == 0
    assert "no results" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    with Index(db, loaded_model) as idx:
        assert idx.search_vector(np.ones(loaded_model.manifest.embed_dim), 3) == [] and not db.exists()
        idx.upsert(_rows(2, loaded_model.manifest.embed_dim, 0))
        assert db.is_file() and idx.backend.count() == 2


def test_a_database_replaced_while_open_is_reopened_and_a_deleted_one_reported(tmp_path, loaded_model):
    db = tmp_path / "photos.db"
    _filled(db, loaded_model, seed=0, prefix="/old")
    with Index(db, loaded_model) as idx:
        first = _rows(1, loaded_model.manifest.embed_dim, 0)[0][4]
        assert idx.search_vector(first, k=1)[0].path == "/old/0.png"
        db.unlink()
        assert "was deleted while open" in idx.problem()
        with pytest.raises(Exception, match="was deleted while open"):
            idx.search_vector(np.ones(loaded_model.manifest.embed_dim), k=1)
        _filled(db, loaded_model, seed=1, prefix="/new")
        assert idx.problem() is None
        assert {h.path.split("/")[1] for h in idx.search_vector(np.ones(loaded_model.manifest.embed_dim), 5)} == {"new"}


def _wait_ready(client, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/readyz").json()["status"] == "ready"


def test_readyz_reports_a_deleted_database_and_recovers_when_it_is_back(tmp_path, loaded_model):
    from fastapi.testclient import TestClient

    from clipforge.serve import create_app

    db = tmp_path / "photos.db"
    _filled(db, loaded_model)
    idx = Index(db, loaded_model)
    with TestClient(create_app(loaded_model, idx)) as client:
        _wait_ready(client)
        db.rename(tmp_path / "moved.db")
        gone = client.get("/readyz")
        assert gone.status_code == 503 and "deleted while open" in gone.json()["error"], gone.text
        search = client.post("/v1/search", json={"text": "a red circle", "k": 2})
        assert search.status_code == 422 and "deleted while open" in search.text, search.text
        (tmp_path / "moved.db").rename(db)
        assert client.get("/readyz").json()["status"] == "ready"
        assert client.post("/v1/search", json={"text": "a red circle", "k": 2}).status_code == 200
    idx.close()
