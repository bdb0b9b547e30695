"""File names that are not valid UTF-8 (written under another encoding) on both back-ends: the file is indexed,
found by search, mapped back to the real file (library, CLI and server) and skipped as unchanged on a rerun."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from clipforge._fspath import display, from_db, to_db
from clipforge.cli.main import main
from clipforge.index import Index

LATIN1_NAME = b"\xe9t\xe9.png"  # "été.png" in Latin-1: not decodable as UTF-8


@pytest.fixture
def folder(shapes_dataset, tmp_path):
    """Two red circles: one with a plain name, one whose name is Latin-1 bytes."""
    root = tmp_path / "photos"
    root.mkdir()
    source = shapes_dataset.folder("test") / "red circle"
    shutil.copyfile(source / "0.png", root / "plain.png")
    shutil.copyfile(source / "1.png", os.path.join(os.fsencode(root), LATIN1_NAME))
    return root


def test_stored_text_round_trips_any_path():
    odd = os.fsdecode(b"/photos/\xe9t\xe9 100%.png")
    assert from_db(to_db(odd)) == odd and to_db("/photos/été.png") == "/photos/été.png"
    assert display(odd) == "/photos/\\xe9t\\xe9 100%.png"
    assert to_db(odd).encode("utf-8")  # storable as UTF-8 text


def test_a_non_utf8_file_name_is_indexed_and_found(db, folder, loaded_model):
    real = os.fsdecode(os.path.join(os.fsencode(folder.resolve()), LATIN1_NAME))
    with Index(db, loaded_model) as idx:
        summary = idx.add(folder)
        assert (summary.added, summary.unreadable) == (2, []), summary
        hits = idx.search(text="a photo of a red circle.", k=2)
        assert real in {h.path for h in hits}
        hit = next(h for h in hits if h.path == real)
        assert idx.path_of(hit.id) == real and os.path.isfile(idx.path_of(hit.id))
        assert real in idx.backend.files()
        again = idx.add(folder)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 2), again
        assert idx.remove(real) == 1 and idx.backend.count() == 1


def test_cli_indexes_searches_and_prints_a_non_utf8_name(folder, index_model, tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    assert main(["index", str(folder), "--db", db, "-m", str(index_model), "--quiet"]) == 0
    assert "unexpected" not in capsys.readouterr().err
    assert main(["search", "a photo of a red circle.", "--db", db, "--json"]) == 0
    paths = {h["path"] for h in json.loads(capsys.readouterr().out)}
    assert os.fsdecode(os.path.join(os.fsencode(folder.resolve()), LATIN1_NAME)) in paths
    assert main(["search", "a photo of a red circle.", "--db", db]) == 0
    assert "\\xe9t\\xe9.png" in "".join(capsys.readouterr().out.split())  # the table may wrap the path


def _wait_ready(client, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_server_search_and_image_route_serve_a_non_utf8_name(folder, loaded_model, tmp_path):
    from fastapi.testclient import TestClient

    from clipforge.serve import create_app

    idx = Index(tmp_path / "serve.db", loaded_model)
    idx.add(folder)
    with TestClient(create_app(loaded_model, idx)) as client:
        _wait_ready(client)
        found = client.post("/v1/search", json={"text": "a photo of a red circle.", "k": 2})
        assert found.status_code == 200, found.text
        odd = [r for r in found.json()["results"] if r["path"].endswith("\\xe9t\\xe9.png")]
        assert len(odd) == 1, found.json()
        image = client.get(odd[0]["image_url"])
        assert image.status_code == 200
        with open(os.path.join(os.fsencode(folder), LATIN1_NAME), "rb") as fh:
            assert image.content == fh.read()
    idx.close()
