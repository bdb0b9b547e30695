"""``clipforge index`` / ``search`` / ``dedup`` (SQLite; the back-ends share the library code tested in
test_index.py), their one-line errors, and a torch-free search."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clipforge.cli.main import main


@pytest.fixture(scope="module")
def small_photos(shapes_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-photos")
    for name in ("red circle", "blue circle", "blue square", "green cross"):
        shutil.copytree(shapes_dataset.folder("test") / name, root / name)
    shutil.copyfile(root / "red circle" / "0.png", root / "duplicate.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def db(small_photos, index_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-db") / "photos.db"
    assert main(["index", str(small_photos), "--db", str(path), "-m", str(index_model), "--quiet"]) == 0
    return path


def test_index_summary_json_counts_everything(small_photos, db, capsys):
    capsys.readouterr()
    assert main(["index", str(small_photos), "--db", str(db), "--json"]) == 0  # model from the database
    out = json.loads(capsys.readouterr().out)
    assert (out["added"], out["updated"], out["removed"], out["unchanged"], out["images"]) == (0, 0, 0, 41, 41)
    assert [Path(u["path"]).name for u in out["unreadable"]] == ["broken.jpg"]


def test_search_text_image_negative_and_cutoff(small_photos, db, capsys):
    capsys.readouterr()
    assert main(["search", "a photo of a blue square.", "--db", str(db), "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and all("blue square" in h["path"] for h in hits)
    query = small_photos / "green cross" / "3.jpg"
    assert main(["search", "--db", str(db), "--image", str(query), "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["path"] == str(query)
    assert main(["search", "a photo of a red circle.", "--db", str(db), "--min-score", "1.01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (
        main(
            [
                "search",
                "--db",
                str(db),
                "-k",
                "2",
                "--image",
                str(small_photos / "red circle" / "4.png"),
                "--negative",
                "red",
                "--json",
            ]
        )
        == 0
    )
    assert all("blue circle" in h["path"] for h in json.loads(capsys.readouterr().out))  # a circle, not red


def test_dedup_finds_the_copy(small_photos, db, capsys):
    capsys.readouterr()
    assert main(["dedup", "--db", str(db), "--threshold", "0.9999", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    copy = {str(small_photos / "duplicate.png"), str(small_photos / "red circle" / "0.png")}
    assert any(copy <= {h["path"] for h in g} for g in groups)


def test_errors_are_one_line(small_photos, db, tmp_path, capsys):
    capsys.readouterr()
    cases = [
        (["search", "--db", str(db)], "search needs a text or an image"),
        (["search", "x", "--db", str(tmp_path / "fresh.db")], "does not exist; index images into it first"),
        (["index", str(tmp_path / "missing"), "--db", str(db)], "does not exist"),
        (["search", "x", "--db", "mysql://h/db"], "neither a file path nor a postgresql:// URL"),
        (["search", "x", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect to"),
        (["dedup", "--db", str(db), "--threshold", "2"], "threshold must be a cosine"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "fresh.db").exists()


def test_search_imports_neither_torch_nor_transformers(db):
    code = (
        "import sys; from clipforge import Index\n"
        f"idx = Index({str(db)!r}); hits = idx.search('a photo of a red circle.', k=2)\n"
        "assert len(hits) == 2, hits\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
