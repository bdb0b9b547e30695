"""``clipforge index --embeddings`` / ``Index.add_embeddings``: the parquet ``clipforge embed`` writes becomes index
rows without reading the images again, checked against the index's model; PostgreSQL's bulk-load path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.index import Index
from clipforge.index.embeddings import MODEL_KEY
from clipforge.testing.shapes import noise_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return noise_folder(tmp_path_factory.mktemp("photos") / "p", classes=("a", "b"), per_class=4)


@pytest.fixture(scope="module")
def embedded(photos, clip_folder, tmp_path_factory):
    """``clipforge embed`` of the photos, to parquet."""
    out = tmp_path_factory.mktemp("embedded") / "photos.parquet"
    assert main(["embed", str(photos), "-o", str(out), "-m", str(clip_folder)]) == 0
    return out


def test_embed_writes_path_and_the_model_record(embedded, clip_folder):
    table = pq.read_table(embedded)
    assert table.column_names == ["path", "embedding"]
    record = json.loads(table.schema.metadata[MODEL_KEY])
    assert record["embed_dim"] == len(table.column("embedding")[0])
    assert record["manifest_sha256"] == hashlib.sha256((clip_folder / "manifest.json").read_bytes()).hexdigest()


def test_imported_rows_equal_indexed_rows_and_a_rerun_keeps_them(embedded, photos, clip_folder, tmp_path, capsys):
    imported, indexed = tmp_path / "imported.db", tmp_path / "indexed.db"
    assert main(["index", "--embeddings", str(embedded), "--db", str(imported), "-m", str(clip_folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["added"], out["images"]) == (8, 8)
    assert main(["index", str(photos), "--db", str(indexed), "-m", str(clip_folder), "--exact-decode", "-q"]) == 0
    with Index(imported) as a, Index(indexed) as b:
        ids_a, paths_a, vectors_a = a.backend.vectors()
        ids_b, paths_b, vectors_b = b.backend.vectors()
        order_a, order_b = np.argsort(paths_a), np.argsort(paths_b)
        assert sorted(paths_a) == sorted(paths_b)
        np.testing.assert_allclose(vectors_a[order_a], vectors_b[order_b], atol=1e-5)
        path, stored = a.file_of(int(ids_a[0]))
        assert (stored.size, stored.mtime) == (Path(path).stat().st_size, Path(path).stat().st_mtime)
    capsys.readouterr()
    # the import stores no photo metadata: the first rerun fills it in (same files: nothing added, vectors kept)
    assert main(["index", str(photos), "--db", str(imported), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["added"], out["updated"] + out["unchanged"]) == (0, 8)
    with Index(imported) as a:
        ids_c, paths_c, vectors_c = a.backend.vectors()
        assert sorted(paths_c) == sorted(paths_a)
        np.testing.assert_allclose(vectors_c[np.argsort(paths_c)], vectors_a[order_a], atol=1e-5)
    assert main(["index", str(photos), "--db", str(imported), "--json"]) == 0  # and then reads nothing
    out = json.loads(capsys.readouterr().out)
    assert (out["added"], out["updated"], out["unchanged"]) == (0, 0, 8)


def _write(path, columns: dict, metadata: dict | None = None):
    table = pa.table(columns)
    pq.write_table(table.replace_schema_metadata(metadata) if metadata else table, path)
    return path


def test_other_dims_and_other_models_are_refused_in_one_line(embedded, clip_folder, tmp_path):
    db = tmp_path / "x.db"
    with Index(db, clip_folder) as idx:
        dim = idx._mine.embed_dim
        wrong_dim = _write(tmp_path / "d.parquet", {"path": ["/x.jpg"], "embedding": [np.ones(dim + 1, np.float32)]})
        with pytest.raises(InputError, match=rf"dim {dim + 1}.*holds dim {dim}"):
            idx.add_embeddings(wrong_dim)
        table = pq.read_table(embedded)
        other = json.loads(table.schema.metadata[MODEL_KEY]) | {"manifest_sha256": "0" * 64, "source": "elsewhere"}
        foreign = _write(tmp_path / "m.parquet", table.to_pydict(), {MODEL_KEY: json.dumps(other).encode()})
        with pytest.raises(InputError, match="embeddings of clip elsewhere") as info:
            idx.add_embeddings(foreign)
        assert "\n" not in str(info.value)
        assert idx.count() == 0
        no_path = _write(tmp_path / "n.parquet", {"file": ["/x.jpg"], "embedding": [np.ones(dim, np.float32)]})
        with pytest.raises(InputError, match="needs 'path' and 'embedding'"):
            idx.add_embeddings(no_path)


def test_old_name_column_and_files_that_are_not_here(clip_folder, tmp_path):
    db = tmp_path / "x.db"
    with Index(db, clip_folder) as idx:
        dim = idx._mine.embed_dim
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((5, dim)).astype(np.float32)
        old = _write(
            tmp_path / "old.parquet", {"name": [f"/cluster/{i}.jpg" for i in range(5)], "embedding": list(vectors)}
        )
        summary = idx.add_embeddings(old, batch_size=2)
        assert summary.added == 5 and idx.count() == 5
        path, stored = idx.file_of(idx.search_vector(vectors[3], 1)[0].id)
        assert path == "/cluster/3.jpg" and (stored.size, stored.mtime, stored.sha256) == (-1, 0.0, "")
        assert idx.search_vector(vectors[3], 1)[0].score == pytest.approx(1.0, abs=1e-6)  # normalised on import
        again = idx.add_embeddings(old)
        assert (again.added, again.updated, idx.count()) == (0, 5, 5)


def test_ray_engine_is_refused_for_an_import(embedded, tmp_path):
    code = main(["index", "--embeddings", str(embedded), "--db", str(tmp_path / "r.db"), "--engine", "ray"])
    assert code != 0


@pytest.mark.slow
def test_postgres_bulk_load_copies_then_builds_hnsw_once(pg_url, clip_folder, tmp_path):
    from clipforge.testing.postgres import fresh_database

    url = fresh_database(pg_url)
    with Index(url, clip_folder) as idx:
        dim = idx._mine.embed_dim
        vectors = np.random.default_rng(1).standard_normal((3000, dim)).astype(np.float32)
        file = _write(
            tmp_path / "e.parquet", {"path": [f"/p/{i}.jpg" for i in range(3000)], "embedding": list(vectors)}
        )
        summary = idx.add_embeddings(file, batch_size=1000, bulk=True)
        assert summary.added == 3000 and idx.count() == 3000
        index = idx.backend.conn.execute("SELECT to_regclass('clipforge.images_embedding_hnsw')").fetchone()[0]
        assert index is not None
        for v in vectors[:20]:
            hit = idx.search_vector(v, 1)[0]
            assert hit.score == pytest.approx(1.0, abs=1e-5)
            assert idx.search_vector(v, 5, exact=True)[0].id == hit.id
        with pytest.raises(InputError, match="already holds images"):
            idx.add_embeddings(file, bulk=True)
