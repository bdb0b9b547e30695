"""Photo metadata in the index: EXIF date taken (else the file's mtime, said so), GPS, camera, size and
orientation stored per image on both back-ends, from the same decode; a version-1 database upgrades in place and
its rows get metadata at the next ``index`` run without being re-embedded."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import InputError
from clipforge.index import Index, SearchFilter, schema
from clipforge.runtime.images import decode_photo
from clipforge.runtime.photo_info import PhotoInfo


def same_info(got: PhotoInfo, want: PhotoInfo) -> bool:
    close = all(
        (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-5)
        for a, b in ((got.lat, want.lat), (got.lon, want.lon))
    )
    return close and got.__dict__ | {"lat": 0, "lon": 0} == want.__dict__ | {"lat": 0, "lon": 0}


def test_decoding_reads_the_metadata_cameras_write(geo_photos):
    _, expected = geo_photos
    for path, want in expected.items():
        image, info = decode_photo(path)
        assert image.size == (want.width, want.height)
        assert same_info(info.with_mtime(Path(path).stat().st_mtime), want), (path, info, want)


def test_the_index_stores_each_photos_metadata(photo_db, geo_photos, loaded_model):
    root, expected = geo_photos
    with Index(photo_db, loaded_model) as idx:
        assert idx.add([root]).added == len(expected)
        ids, paths, _ = idx.backend.vectors()
        stored = idx.metadata(list(ids))
        assert len(stored) == len(expected)
        for image_id, path in zip(ids, paths):
            assert same_info(stored[int(image_id)], expected[path]), path
        assert sum(info.taken_from == "mtime" for info in stored.values()) == len(expected) // 5
        assert idx.stats()["schema_version"] == schema.SCHEMA_VERSION


def _version_1_copy(source_db: str, target: Path) -> None:
    """A database as clipforge wrote it before photo metadata: the version-1 schema step (data, never edited)
    and the rows (path, size, mtime, sha256, embedding) and model record of ``source_db``."""
    version, statements = schema.SQLITE[0]
    assert version == 1
    src = sqlite3.connect(source_db)
    dst = sqlite3.connect(target)
    for statement in statements:
        dst.execute(statement)
    dst.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    columns = "id, family, source, folder, manifest_sha256, embed_dim, preprocessing"
    dst.execute(
        f"INSERT INTO model ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        src.execute(f"SELECT {columns} FROM model").fetchone(),
    )
    rows = src.execute("SELECT id, path, size, mtime, sha256, embedding FROM images").fetchall()
    dst.executemany("INSERT INTO images (id, path, size, mtime, sha256, embedding) VALUES (?, ?, ?, ?, ?, ?)", rows)
    dst.commit()
    dst.close()
    src.close()


def test_a_version_1_database_upgrades_in_place_and_fills_metadata_without_re_embedding(
    geo_photos, loaded_model, tmp_path
):
    root, expected = geo_photos
    with Index(tmp_path / "new.db", loaded_model) as idx:
        idx.add([root])
    old = tmp_path / "old.db"
    _version_1_copy(str(tmp_path / "new.db"), old)
    before = sqlite3.connect(old).execute("SELECT id, path, embedding FROM images ORDER BY id").fetchall()
    with Index(old, loaded_model) as idx:  # opened read-only: searches work, nothing is migrated yet
        assert idx.stats()["schema_version"] == 1 and idx.metadata([r[0] for r in before]) == {}
        assert len(idx.search("a photo of a red circle.", k=3)) == 3
        with pytest.raises(InputError, match=r"before photo metadata .*run 'clipforge index' on its folders"):
            idx.search("a photo of a red circle.", filters=SearchFilter.parse(camera="canon"))
        started = time.perf_counter()
        summary = idx.add([root])
        assert (summary.added, summary.updated, summary.unchanged) == (0, 0, len(expected)), summary
        assert idx.stats()["schema_version"] == schema.SCHEMA_VERSION
        stored = idx.metadata([r[0] for r in before])
        assert {p: same_info(stored[i], expected[p]) for i, p, _ in before} == dict.fromkeys(expected, True)
        assert time.perf_counter() - started < 30
        assert idx.add([root]).unchanged == len(expected)  # filled once: nothing to read again
    after = sqlite3.connect(old).execute("SELECT id, path, embedding FROM images ORDER BY id").fetchall()
    assert after == before  # same ids, paths and embeddings, bit for bit


def test_precomputed_rows_get_metadata_at_the_next_index_run(geo_photos, loaded_model, tmp_path):
    root, expected = geo_photos
    path = next(iter(expected))
    st = Path(path).stat()
    with Index(tmp_path / "up.db", loaded_model) as idx:
        vector = loaded_model.embed_images([path])[0]
        idx.upsert([(path, st.st_size, st.st_mtime, "0" * 64, vector)])
        assert idx.metadata([1]) == {}
        assert idx.search("a photo of a red circle.", filters=SearchFilter.parse(after="1900")) == []
        summary = idx.add([path])
        assert summary.updated == 1  # its sha256 was unknown: read and embedded, metadata stored
        assert same_info(idx.metadata([1])[1], expected[path])
        np.testing.assert_allclose(idx.backend.vectors()[2][0], vector, atol=1e-5)


def test_a_version_1_postgres_database_upgrades_in_place(geo_photos, loaded_model, pg_url):
    import psycopg

    from clipforge.testing.postgres import fresh_database

    root, expected = geo_photos
    new, old = fresh_database(pg_url), fresh_database(pg_url)
    with Index(new, loaded_model) as idx:
        idx.add([root])
    version, statements = schema.POSTGRES[0]
    columns = "id, family, source, folder, manifest_sha256, embed_dim, preprocessing"
    with psycopg.connect(new) as src, psycopg.connect(old, autocommit=True) as dst:
        dim = src.execute("SELECT embed_dim FROM clipforge.model").fetchone()[0]
        dst.execute("CREATE SCHEMA clipforge")
        for statement in statements:  # the version-1 step as clipforge wrote it (data, never edited)
            dst.execute(statement.format(dim=dim))
        dst.execute("INSERT INTO clipforge.meta (key, value) VALUES ('schema_version', %s)", (str(version),))
        model = src.execute(f"SELECT {columns} FROM clipforge.model").fetchone()
        dst.execute(
            f"INSERT INTO clipforge.model ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (*model[:-1], json.dumps(model[-1])),
        )
        rows = src.execute("SELECT id, path, size, mtime, sha256, embedding::text FROM clipforge.images").fetchall()
        with dst.cursor() as cur:
            cur.executemany(
                "INSERT INTO clipforge.images (id, path, size, mtime, sha256, embedding) "
                "VALUES (%s, %s, %s, %s, %s, %s::vector)",
                rows,
            )
    read = "SELECT id, path, embedding::text FROM clipforge.images ORDER BY id"
    with psycopg.connect(old) as conn:
        before = conn.execute(read).fetchall()
    with Index(old, loaded_model) as idx:  # PostgreSQL migrates when opened
        assert idx.stats()["schema_version"] == schema.SCHEMA_VERSION and idx.metadata([r[0] for r in before]) == {}
        summary = idx.add([root])
        assert (summary.added, summary.updated, summary.unchanged) == (0, 0, len(expected)), summary
        stored = idx.metadata([r[0] for r in before])
        assert all(same_info(stored[i], expected[p]) for i, p, _ in before)
    with psycopg.connect(old) as conn:
        assert conn.execute(read).fetchall() == before
