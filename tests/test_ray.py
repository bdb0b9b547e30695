"""The Ray engine (``--engine ray``) on a local Ray instance (2 CPUs, no dashboard) shared by the module:
the same embeddings and index rows as the local engine, unreadable files counted, a killed worker's batch
retried without duplicating rows, and one-line errors for what the engine refuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipforge.cli.main import main
from clipforge.runtime.images import decode_photo

N_IMAGES = 40


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the ray extra is part of clipforge[all]")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """40 JPEGs of different sizes in two folders, one corrupt file and one truncated JPEG."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40 + i, 60 - i % 7, 3), dtype=np.uint8)).save(folder / f"{i:02d}.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    whole = (root / "a" / "01.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return root


def _read(path, name_column):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float32)
    return dict(zip(table[name_column].to_pylist(), vectors)), table


@pytest.mark.slow
def test_embed_ray_matches_local(ray_local, clip_folder, photos, tmp_path, capsys):
    local, distributed = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert main(["embed", str(photos), "-o", str(local), "-m", str(clip_folder)]) == 1
    capsys.readouterr()
    code = main(
        [
            "embed",
            str(photos),
            "-o",
            str(distributed),
            "-m",
            str(clip_folder),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--cpus-per-worker",
            "1",
            "--batch-size",
            "8",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1  # two unreadable files: reported, not fatal
    assert "2 of 42 image(s)" in err and "broken.jpg" in err and "truncated.jpg" in err and "Ray" in err
    want, _ = _read(local, "path")  # one column name for the path in both engines
    got, table = _read(distributed, "path")
    assert table.column_names == ["path", "sha256", "embedding"]
    assert table.num_rows == len(got) == N_IMAGES and set(got) == set(want)
    cosines = [float(got[p] @ want[p] / np.linalg.norm(got[p]) / np.linalg.norm(want[p])) for p in want]
    assert min(cosines) >= 0.99999
    import hashlib

    digests = dict(zip(table["path"].to_pylist(), table["sha256"].to_pylist()))
    assert all(digests[p] == hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in digests)


def _index_rows(db):
    from clipforge.index import Index

    with Index(db) as idx:
        ids, paths, matrix = idx.backend.vectors()
        files = idx.backend.files()
        hits = {q: [(h.path, round(h.score, 4)) for h in idx.search(text=q, k=5)] for q in ("red circle", "a dog")}
    return dict(zip(paths, matrix)), files, hits


def _index(db, photos, clip_folder, capsys, *extra):
    code = main(["index", str(photos), "--db", db, "-m", str(clip_folder), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.slow
def test_index_ray_into_postgres_matches_local_despite_a_killed_worker(
    ray_local, pg_url, clip_folder, photos, tmp_path, monkeypatch, capsys
):
    """One worker is SIGKILLed after committing its second batch; Ray restarts it and retries that batch. The
    index still ends with every readable image exactly once, equal to the local engine's: rows, vectors, hits."""
    import psycopg

    from clipforge.testing.postgres import fresh_database

    local_db, ray_db, marker = fresh_database(pg_url), fresh_database(pg_url), tmp_path / "killed"
    local = _index(local_db, photos, clip_folder, capsys)
    monkeypatch.setenv("CLIPFORGE_DEBUG_KILL", f"batch:2:{marker}")
    distributed = _index(ray_db, photos, clip_folder, capsys, "--engine", "ray", "--workers", "2", "--batch-size", "4")
    assert marker.exists()  # the worker really died
    for summary in (local, distributed):
        assert (summary["added"], summary["updated"], summary["images"]) == (N_IMAGES, 0, N_IMAGES)
        assert sorted(Path(u["path"]).name for u in summary["unreadable"]) == ["broken.jpg", "truncated.jpg"]
    with psycopg.connect(ray_db) as conn:
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT path) FROM clipforge.images").fetchone()
    assert rows == distinct == N_IMAGES
    want_vectors, want_files, want_hits = _index_rows(local_db)
    got_vectors, got_files, got_hits = _index_rows(ray_db)
    assert got_files == want_files  # path, size, mtime, sha256
    assert min(float(got_vectors[p] @ want_vectors[p]) for p in want_vectors) >= 0.99999
    assert got_hits == want_hits


@pytest.mark.slow
def test_index_ray_refuses_sqlite(clip_folder, photos, tmp_path, capsys):
    code = main(["index", str(photos), "--db", str(tmp_path / "i.db"), "-m", str(clip_folder), "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "PostgreSQL" in err and "\n" not in err
    assert not (tmp_path / "i.db").exists()


def test_ray_only_options_need_the_ray_engine(clip_folder, photos, tmp_path, capsys):
    code = main(["embed", str(photos), "-o", str(tmp_path / "e.parquet"), "-m", str(clip_folder), "--workers", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--engine ray" in err and "\n" not in err


@pytest.mark.slow
def test_ray_engine_refuses_what_it_cannot_do(clip_folder, photos, tmp_path, capsys):
    code = main(["embed", str(photos), "-o", str(tmp_path / "e.npy"), "-m", str(clip_folder), "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "writes parquet" in err and "\n" not in err


@pytest.mark.slow
def test_missing_ray_names_the_extra(clip_folder, photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    code = main(["embed", str(photos), "-o", str(tmp_path / "e.parquet"), "-m", str(clip_folder), "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pip install 'clipforge[ray]'" in err and "\n" not in err
    assert not (tmp_path / "e.parquet").exists()


def test_worker_steps_without_ray(clip_folder, photos, tmp_path):
    """The engine-independent steps a worker runs: read errors, unchanged content and corrupt files are
    statuses, not exceptions; embeddings equal the runtime's."""
    import hashlib

    from clipforge.distributed import records
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(clip_folder, threads=1)
    good, same = photos / "a" / "01.jpg", photos / "b" / "00.jpg"
    paths = [good, same, photos / "broken.jpg", tmp_path / "gone.jpg"]
    states = records.stat_files(paths)
    known = {str(same): hashlib.sha256(same.read_bytes()).hexdigest(), str(good): "0" * 64}
    table = records.file_table(states, known)
    batch = records.read_files({k: table[k].to_numpy(zero_copy_only=False) for k in records.FILE_COLUMNS})
    decoded = records.decode_batch(batch, model.manifest.image, draft=None)
    status = records.status_columns(decoded, batch["known"])
    assert list(status["status"]) == ["updated", "unchanged", "unreadable", "unreadable"]
    assert "broken.jpg" in status["error"][2] and "cannot be read" in status["error"][3]
    assert decoded[0].info == decode_photo(good)[1].with_mtime(good.stat().st_mtime)
    assert decoded[1].info == decode_photo(same)[1].with_mtime(same.stat().st_mtime)  # from its header
    assert decoded[0].info.taken_from == "mtime" and decoded[0].info.width == Image.open(good).width
    vectors = records.embed_decoded(model, decoded, batch_size=2)
    np.testing.assert_allclose(vectors[0], model.embed_images([good])[0], atol=1e-6)
    assert not vectors[1:].any()


@pytest.mark.slow
def test_worker_runs_on_the_backend_asked_for(clip_folder, monkeypatch, capsys):
    """--backend reaches every worker (it was once dropped on the way to Ray); the driver checks it first."""
    from clipforge.distributed.ray import EmbedActor, Job
    from clipforge.runtime.backends import openvino_available

    backend = "openvino" if openvino_available() else "onnxruntime"
    actor = EmbedActor(Job(str(clip_folder), threads=1, batch_size=4, backend=backend))
    actor.model.image_encoder.session  # noqa: B018 -- opens the lazy encoder
    assert actor.model.backends["image-encoder"] == f"{backend}/fp32"
    code = main(
        ["embed", "x.jpg", "-o", "out.parquet", "-m", str(clip_folder), "--engine", "ray", "--backend", "tensorflow"]
    )
    assert code == 2 and "unknown backend 'tensorflow'" in capsys.readouterr().err
    code = main(
        [
            "embed",
            "x.jpg",
            "-o",
            "out.parquet",
            "-m",
            str(clip_folder),
            "--engine",
            "ray",
            "--backend",
            "onnxruntime",
            "--precision",
            "bf16",
        ]
    )
    assert code == 2 and "precision 'bf16' runs on OpenVINO" in capsys.readouterr().err
