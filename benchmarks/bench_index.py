"""The embedding index, measured side by side in one run. Usage:

    python benchmarks/bench_index.py [--images 300] [--vectors 100000] [--queries 200] [--skip-photos|--skip-vectors]

1. Photos: N 4000x3000 JPEGs (30 generated photos repeated under N names, cached under $CLIPFORGE_BENCH_DIR),
   an int8-dynamic ViT-B/32-shaped build (random weights; ``--model`` reuses an existing one). Per image decode
   + pre-process (exact vs JPEG draft); indexing into SQLite with draft decode vs exact decode vs the bare
   ``embed_images`` loop over the same files; cosine of draft vs exact
   embeddings. Targets: draft indexing >= 3x exact indexing; database overhead (exact indexing vs the bare loop)
   <= 10%; mean cosine >= 0.995.
2. Vectors: 100k random unit vectors (dim 512) and random queries, k = 10, twice: uniform on the sphere (the
   worst case for any approximate index: every point is nearly equidistant) and clustered like real embeddings
   (points around 1000 random centres; queries drawn the same way). SQLite exact search in numpy (vectors
   cached) vs ``sqlite-vec``'s ``vec_distance_cosine`` in SQL; pgvector HNSW (pgserver's PostgreSQL 16 +
   pgvector 0.6.2) at several ``ef_search`` with recall@10 against exact. Targets: SQLite p50 <= 100 ms; HNSW
   p50 <= 10 ms at recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import WORK, b32_checkpoint

K = 10


def cpu() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"]
    return f"{name}, {os.cpu_count()} cores, flags: {' '.join(f for f in wanted if f in flags) or 'none of note'}"


def percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


# --- 1. photos ---------------------------------------------------------------------------------------------
def make_photo(path: Path, seed: int) -> None:
    """A smooth random colour field with shapes and film-like grain, 4000x3000, JPEG quality 90 (~2-3 MB, about
    the entropy of a camera photo; a grain-free field would decode unrealistically fast)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((4000, 3000), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = int(rng.integers(0, 3600)), int(rng.integers(0, 2600))
        w, h = int(rng.integers(100, 1200)), int(rng.integers(100, 1200))
        box, colour = (x, y, x + w, y + h), tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    grain = Image.merge("RGB", [Image.effect_noise((4000, 3000), 40) for _ in range(3)])
    Image.blend(image, grain, 0.15).save(path, quality=90)


def photos(n: int, unique: int = 30) -> Path:
    """``n`` files, ``unique`` distinct photos repeated under different names (generating 12-megapixel images is
    slow; every file is still read, hashed, decoded and embedded on its own)."""
    import shutil

    folder = WORK / "photos-4000x3000"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(min(n, unique)) if not (folder / f"{i:04d}.jpg").is_file()]
    if missing:
        print(f"generating {len(missing)} 4000x3000 JPEGs in {folder} (cached for later runs)", flush=True)
        with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            list(pool.map(lambda i: make_photo(folder / f"{i:04d}.jpg", i), missing))
    for i in range(unique, n):
        if not (folder / f"{i:04d}.jpg").is_file():
            shutil.copyfile(folder / f"{i % unique:04d}.jpg", folder / f"{i:04d}.jpg")
    return folder


def int8_b32() -> Path:
    from clipforge.builder import build_composite

    return build_composite(
        b32_checkpoint(), WORK / "clip-b32-int8-dynamic", quantize="int8-dynamic", show_progress=False
    ).path


def decode_ms(files: list[Path], spec) -> dict:
    """Median ms per image of decode + resize/crop + normalise, exact and draft, alternated per file."""
    from clipforge.runtime.images import draft_request, load_image, resized_pixels, to_pixel_values

    times = {"exact": [], "draft": []}
    for f in files:
        for mode, draft in (("exact", None), ("draft", draft_request(spec))):
            start = time.perf_counter()
            to_pixel_values([resized_pixels(load_image(f, draft=draft), spec)], spec)
            times[mode].append(time.perf_counter() - start)
    return {f"{m}_decode_preprocess_ms": round(1000 * statistics.median(t), 1) for m, t in times.items()}


def bench_photos(n: int, build: str | None, rounds: int = 3) -> dict:
    """The three ways over the same files, in ``rounds`` chunks with the order rotated per chunk, so a change of
    machine load during the run hits all three alike; times are summed per way."""
    from clipforge.index import Index
    from clipforge.runtime.model import ZeroShotModel

    folder, model = photos(n), ZeroShotModel.from_onnx(build or int8_b32())
    files = [folder / f"{i:04d}.jpg" for i in range(n)]
    out = {"images": len(files), "rounds": rounds, **decode_ms(files[:10], model.manifest.image)}
    model.embed_images(files[:4])  # warm-up
    seconds = {"bare_embed_images": 0.0, "index_exact": 0.0, "index_draft": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {m: Index(Path(tmp) / f"{m}.db", model) for m in ("exact", "draft")}
        for r in range(rounds):
            chunk = files[r * n // rounds : (r + 1) * n // rounds]
            for way in list(seconds)[r % 3 :] + list(seconds)[: r % 3]:
                seconds[way] += _time_way(way, chunk, model, indexes)
        vectors = {m: dict(zip(*idx.backend.vectors()[1:])) for m, idx in indexes.items()}
        for idx in indexes.values():
            idx.close()
    cos = np.array([float(vectors["exact"][p] @ vectors["draft"][p]) for p in vectors["exact"]])
    out.update({f"{k}_s": round(v, 2) for k, v in seconds.items()})
    out.update(
        {
            "images_per_s": {k: round(len(files) / v, 2) for k, v in seconds.items()},
            "draft_speedup_vs_exact_indexing": round(seconds["index_exact"] / seconds["index_draft"], 2),
            "db_overhead_exact_vs_bare": round(seconds["index_exact"] / seconds["bare_embed_images"] - 1, 3),
            "draft_vs_exact_cosine": {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5)},
        }
    )
    return out


def _time_way(way: str, chunk: list[Path], model, indexes: dict) -> float:
    start = time.perf_counter()
    if way == "bare_embed_images":
        model.embed_images(chunk, batch_size=32)
    else:
        mode = way.removeprefix("index_")
        summary = indexes[mode].add(chunk, exact_decode=mode == "exact", quiet=True, batch_size=32)
        assert summary.added == len(chunk), summary
    return time.perf_counter() - start


# --- 2. vectors --------------------------------------------------------------------------------------------
def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fake_record(dim: int):
    from clipforge.index.base import ModelRecord

    return ModelRecord("clip", "benchmark", "/nonexistent", "0" * 64, dim, {})


def bench_sqlite(data: np.ndarray, queries: np.ndarray, exact_ids: np.ndarray, folder: Path) -> dict:
    from clipforge.index.base import Row
    from clipforge.index.sqlite import SqliteBackend

    backend = SqliteBackend(folder / "vectors.db")
    backend.set_model_record(fake_record(data.shape[1]))
    for s in range(0, len(data), 10_000):
        backend.apply([Row(f"/v/{i}", 1, 0.0, "", data[i]) for i in range(s, min(s + 10_000, len(data)))])
    start = time.perf_counter()
    backend.vectors()
    out = {"first_search_load_s": round(time.perf_counter() - start, 3)}
    times, hits = [], []
    for q in queries:
        start = time.perf_counter()
        hits.append([h.id for h in backend.search(q, K)])
        times.append(time.perf_counter() - start)
    out["numpy_exact"] = {**percentiles(times), "recall@10": recall(hits, exact_ids)}
    backend.close()
    out["sqlite_vec"] = bench_sqlite_vec(folder / "vectors.db", queries[:20], exact_ids[:20])
    return out


def vec_connection(path: Path):
    """A connection with sqlite-vec loaded: the stdlib's if it can load extensions (this machine's Python
    cannot: no ``enable_load_extension``), else apsw's."""
    import sqlite3

    import sqlite_vec

    conn = sqlite3.connect(path)
    if hasattr(conn, "enable_load_extension"):
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        return conn, "stdlib sqlite3"
    import apsw

    conn = apsw.Connection(str(path))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    return conn, "apsw (the stdlib sqlite3 here cannot load extensions)"


def bench_sqlite_vec(path: Path, queries: np.ndarray, exact_ids: np.ndarray) -> dict:
    conn, via = vec_connection(path)
    sql = "SELECT id FROM images ORDER BY vec_distance_cosine(embedding, ?) LIMIT ?"
    times, hits = [], []
    for q in queries:
        start = time.perf_counter()
        hits.append([r[0] for r in conn.cursor().execute(sql, (q.astype("<f4").tobytes(), K))])
        times.append(time.perf_counter() - start)
    conn.close()
    return {**percentiles(times), "recall@10": recall(hits, exact_ids), "queries": len(queries), "via": via}


def bench_pgvector(
    server: str, data: np.ndarray, queries: np.ndarray, exact_ids: np.ndarray, ef_values: list[int]
) -> dict:
    from clipforge.index.postgres import PostgresBackend
    from clipforge.testing.postgres import fresh_database

    backend = PostgresBackend(fresh_database(server, "bench"))
    backend.set_model_record(fake_record(data.shape[1]))
    out = load_pg(backend.conn, data)
    for ef in ef_values:
        backend.ef_search = ef
        backend.search(queries[0], K)  # sets the session's ef_search outside the timing
        times, hits = [], []
        for q in queries:
            start = time.perf_counter()
            hits.append([h.id - 1 for h in backend.search(q, K)])  # bigserial ids start at 1
            times.append(time.perf_counter() - start)
        out[f"hnsw_ef_search_{ef}"] = {**percentiles(times), "recall@10": recall(hits, exact_ids)}
    backend.close()
    return out


def load_pg(conn, data: np.ndarray) -> dict:
    """COPY the rows in (binary), then build the HNSW index (faster than maintaining it row by row)."""
    conn.execute("DROP INDEX clipforge.images_embedding_hnsw")
    start = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY clipforge.images (path, size, mtime, sha256, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["text", "int8", "float8", "text", "vector"])
        for i, v in enumerate(data):
            copy.write_row((f"/v/{i}", 1, 0.0, "", v))
    copied = time.perf_counter() - start
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
    start = time.perf_counter()
    conn.execute("CREATE INDEX images_embedding_hnsw ON clipforge.images USING hnsw (embedding vector_cosine_ops)")
    return {"copy_s": round(copied, 1), "hnsw_build_s": round(time.perf_counter() - start, 1)}


def recall(found: list[list[int]], exact_ids: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(e.tolist())) / K for f, e in zip(found, exact_ids)])), 4)


def clustered_unit(n: int, dim: int, seed: int, per_cluster: int = 100, spread: float = 0.8) -> np.ndarray:
    """Embedding-like data: unit vectors around n / per_cluster random centres (members at cosine ~0.6 to each
    other)."""
    rng = np.random.default_rng(seed)
    centres = random_unit(max(1, n // per_cluster), dim, 12345)  # the same centres for data and queries
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, dim), np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def bench_vectors(n: int, n_queries: int, dim: int = 512, pgvector: bool = True) -> dict:
    from clipforge.testing.postgres import postgres_server

    out = {"vectors": n, "dim": dim, "queries": n_queries, "k": K}
    sets = {
        "uniform": (random_unit(n, dim, 0), random_unit(n_queries, dim, 1)),
        "clustered": (clustered_unit(n, dim, 0), clustered_unit(n_queries, dim, 1)),
    }
    with postgres_server(durable=True) if pgvector else contextlib.nullcontext() as server:
        for name, (data, queries) in sets.items():
            exact_ids = np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :K]  # row i has id i + 1
            with tempfile.TemporaryDirectory() as tmp:
                result = {"sqlite": bench_sqlite(data, queries, exact_ids + 1, Path(tmp))}
            if pgvector:
                result["pgvector"] = bench_pgvector(server, data, queries, exact_ids, [40, 100, 200, 400])
            out[name] = result
            print(json.dumps({name: result}, indent=2), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true")
    parser.add_argument("--skip-pgvector", action="store_true", help="vectors: SQLite only")
    parser.add_argument("--json", help="also write the full result to this file")
    parser.add_argument("--model", help="an existing int8 ViT-B/32-shaped build (default: build one)")
    args = parser.parse_args()
    result = {"cpu": cpu(), "note": "timings on whatever load the machine had; ratios are from one run"}
    if not args.skip_vectors:
        result["vectors"] = bench_vectors(args.vectors, args.queries, pgvector=not args.skip_pgvector)
    if not args.skip_photos:
        result["photos"] = bench_photos(args.images, args.model)
    print(json.dumps(result, indent=2))
    print("\n".join(summary(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def summary(result: dict) -> list[str]:
    """One line per figure, with the issue's targets."""
    lines = [f"machine: {result['cpu']} (shared: see the note)"]
    for name in ("uniform", "clustered"):
        v = result.get("vectors", {}).get(name)
        if not v:
            continue
        sq, pg = v["sqlite"], v.get("pgvector", {})
        lines.append(
            f"{name} {result['vectors']['vectors']} x {result['vectors']['dim']}: SQLite numpy exact p50 "
            f"{sq['numpy_exact']['p50_ms']} ms p99 {sq['numpy_exact']['p99_ms']} ms (target p50 <= 100); "
            f"sqlite-vec p50 {sq['sqlite_vec']['p50_ms']} ms; HNSW build {pg.get('hnsw_build_s')} s"
        )
        for key, r in pg.items():
            if key.startswith("hnsw_ef"):
                lines.append(
                    f"  pgvector {key}: p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms recall@10 "
                    f"{r['recall@10']} (target p50 <= 10 at recall >= 0.95)"
                )
    ph = result.get("photos")
    if ph:
        lines.append(
            f"photos {ph['images']} x 4000x3000 JPEG: decode+preprocess exact "
            f"{ph['exact_decode_preprocess_ms']} ms, draft {ph['draft_decode_preprocess_ms']} ms per image; "
            f"images/s {ph['images_per_s']}"
        )
        lines.append(
            f"  draft indexing {ph['draft_speedup_vs_exact_indexing']}x exact indexing (target >= 3); "
            f"DB overhead vs bare embed_images {100 * ph['db_overhead_exact_vs_bare']:.1f}% (target <= 10%); "
            f"draft vs exact cosine mean {ph['draft_vs_exact_cosine']['mean']} min "
            f"{ph['draft_vs_exact_cosine']['min']} (target mean >= 0.995)"
        )
    return lines


if __name__ == "__main__":
    main()
