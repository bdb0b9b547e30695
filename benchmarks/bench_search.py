"""Search at scale, side by side in one run: SQLite with today's exact numpy search (``--exact``), SQLite with the
usearch sidecar (the embedded default), PostgreSQL + pgvector HNSW (pgserver; when the ``index`` extra is
installed). Usage:

    python benchmarks/bench_search.py [--sizes 100000,1000000] [--dims 512,768] [--data lowrank|uniform]
                                      [--pg-max 100000] [--queries 200] [--engines sqlite,postgres]
                                      [--pg-build-memory 1GB]

Per (size, dim): N unit vectors written to a parquet (as ``clipforge embed`` writes it) and imported with
``clipforge index --embeddings`` (the import path; no image files), then: build time (import, sidecar, HNSW),
file size, cold CLI search (a fresh ``clipforge search --json`` process: start -> hits; OS page cache warm),
its peak RSS, warm p50/p99 per query in one process, recall@10 against exact. The model is a random-weight
ViT-B/32-shaped CLIP with a tokenizer of OpenAI's size (49 408 tokens, learnt from random words) exported once
(int8-dynamic by default; its projection set to the dim), so the cold figure includes loading a real-sized
tokenizer and text tower and embedding the query.

``--data lowrank`` (default): 32 latent factors mapped into D dimensions plus noise, queries drawn the same way
(photo embeddings have a low intrinsic dimension); ``--data uniform``: uniform on the sphere, the worst case
for any graph index (every point about equally far from every other). Prints a table and a JSON line with the
CPU and its flags.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import WORK
from bench_index import cpu, percentiles

K = 10


def model(dim: int, quantize: str = "none") -> Path:
    """A random ViT-B/32-shaped CLIP with projection ``dim``, exported (``quantize`` none) or built with that
    quantisation, once under the bench folder."""
    from clipforge.builder import build_composite
    from clipforge.export import ExportOptions, export_model
    from clipforge.testing.checkpoints import save_tiny_checkpoint
    from clipforge.testing.tokenizers import CLIP_VOCAB

    name = f"clip-b32-vocab{CLIP_VOCAB}-proj{dim}"
    out = WORK / (f"{name}-export" if quantize == "none" else f"{name}-{quantize}")
    if not (out / "manifest.json").is_file():
        ckpt = WORK / name
        if not (ckpt / "model.safetensors").is_file():
            save_tiny_checkpoint("clip", ckpt, shape="base", projection_dim=dim, tokenizer_vocab=CLIP_VOCAB)
        if quantize == "none":
            export_model(ckpt, out, ExportOptions(validate=False), show_progress=False)
        else:
            build_composite(ckpt, out, quantize=quantize, show_progress=False)
    return out


def vectors(n: int, dim: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).standard_normal((32, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in chunks: 1M x 768 float32 is 3 GB
        m = min(100_000, n - start)
        if kind == "uniform":
            x = rng.standard_normal((m, dim), dtype=np.float32)
        else:
            x = rng.standard_normal((m, 32), dtype=np.float32) @ mixing
            x += 0.3 * np.sqrt(32) * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def write_parquet(path: Path, x: np.ndarray, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipforge.index import ModelRecord
    from clipforge.index.embeddings import model_metadata

    schema = pa.schema(
        [("path", pa.string()), ("embedding", pa.list_(pa.float32(), x.shape[1]))],
        metadata=model_metadata(ModelRecord.of_folder(folder)),
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(x), 100_000):
            part = x[start : start + 100_000]
            paths = pa.array([f"/bench/photos/{i:07d}.jpg" for i in range(start, start + len(part))])
            emb = pa.FixedSizeListArray.from_arrays(part.reshape(-1), x.shape[1])
            writer.write_table(pa.Table.from_arrays([paths, emb], schema=schema))


PEAK = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write("
    "next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))))"
)
CLI = PEAK + "; from clipforge.cli.main import run; sys.argv[0] = 'clipforge'; run()"


# fresh processes run as an installed clipforge does, with its bytecode cached (a shell that sets
# PYTHONDONTWRITEBYTECODE would otherwise make every cold run compile clipforge's modules: ~0.15 s here)
FRESH = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def peak_mb(stderr: str) -> float:
    """VmHWM (peak RSS of this process image: ``ru_maxrss`` would carry the parent's peak across exec)."""
    line = next(line for line in stderr.splitlines() if line.startswith("VmHWM"))
    return round(int(line.split()[1]) / 1024, 1)


QUERIES = ("a photo of a dog", "a red car on a beach", "two children in the snow", "a birthday cake")


def cold_rss(db: str, exact: bool, repeats: int) -> dict:
    """Fresh ``clipforge search --json`` processes (another query text each): wall time start -> hits and peak
    RSS, medians over ``repeats`` (the first run warms the OS page cache and is not counted)."""
    times, peaks = [], []
    for i in range(repeats + 1):
        text = QUERIES[i % len(QUERIES)]
        cmd = [sys.executable, "-c", CLI, "search", text, "--db", db, "-k", str(K), "--json"]
        start = time.perf_counter()
        proc = subprocess.run(cmd + (["--exact"] if exact else []), capture_output=True, text=True, env=FRESH)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        assert len(json.loads(proc.stdout)) == K
        if i:
            times.append(seconds)
            peaks.append(peak_mb(proc.stderr))
    return {
        "cold_s": round(float(np.median(times)), 3),
        "rss_mb": max(peaks),
        "cold_runs": [round(t, 3) for t in times],
    }


BACKEND_COLD = (
    PEAK
    + """
import time
import numpy as np
start = time.perf_counter()
from clipforge.index import open_backend
backend = open_backend(sys.argv[1])
query = np.random.default_rng(5).standard_normal(int(sys.argv[2])).astype(np.float32)
hits = backend.search(query / np.linalg.norm(query), 10, exact=sys.argv[3] == "exact")
print(time.perf_counter() - start)
"""
)


def backend_cold(db: str, dim: int, exact: bool, repeats: int) -> dict:
    """Fresh processes that open the database and run one search with a query vector (no model): the index's
    share of the cold CLI figure (Python start excluded), and peak RSS; medians over ``repeats``."""
    cmd = [sys.executable, "-c", BACKEND_COLD, db, str(dim), "exact" if exact else "ann"]
    runs = [subprocess.run(cmd, capture_output=True, text=True, check=True, env=FRESH) for _ in range(repeats + 1)][1:]
    seconds = float(np.median([float(proc.stdout) for proc in runs]))
    return {"search_cold_s": round(seconds, 3), "search_rss_mb": max(peak_mb(proc.stderr) for proc in runs)}


def warm(index, queries: np.ndarray, exact: bool) -> tuple[dict, list[list[int]]]:
    index.search_vector(queries[0], K, exact=exact)  # caches, mappings
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = index.search_vector(q, K, exact=exact)
        times.append(time.perf_counter() - start)
        found.append([h.path for h in hits])
    return percentiles(times), found


def recall(found: list[list], truth: list[list]) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])), 4)


def run_sqlite(db: Path, parquet: Path, folder: Path, queries: np.ndarray, repeats: int) -> list[dict]:
    from clipforge.index import Index, ann
    from clipforge.index.sqlite import ANN_MIN_ROWS

    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), *ann.files(db)):
        p.unlink(missing_ok=True)
    start = time.perf_counter()
    with Index(db, folder, ann_min_rows=len(queries) * 10**9) as idx:  # the import alone, no sidecar
        idx.add_embeddings(parquet)
        imported = time.perf_counter() - start
        idx.backend.ann_min_rows = ANN_MIN_ROWS
        start = time.perf_counter()
        idx.backend.refresh_search()
        sidecar = time.perf_counter() - start
    rows = []
    truth = None
    for exact in (True, False):
        c = cold_rss(str(db), exact, repeats) | backend_cold(str(db), queries.shape[1], exact, repeats)
        with Index(db, folder) as idx:
            w, found = warm(idx, queries, exact)
        truth = found if exact else truth
        size = db.stat().st_size + (0 if exact else ann.files(db)[0].stat().st_size)
        rows.append(
            {
                "engine": "sqlite exact (numpy)" if exact else "sqlite + usearch sidecar",
                "build_s": round(imported, 1) if exact else round(sidecar, 1),
                "mb": round(size / 1e6, 1),
                **c,
                **w,
                "recall@10": 1.0 if exact else recall(found, truth),
            }
        )
    return rows, truth


def exact_truth(x: np.ndarray, queries: np.ndarray) -> list[list[str]]:
    """The exact top-K paths of each query by a numpy product (the truth when SQLite is not run)."""
    scores = queries @ x.T
    part = np.argpartition(-scores, K, axis=1)[:, :K]
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), axis=1), 1)
    return [[f"/bench/photos/{i:07d}.jpg" for i in row] for row in top]


def run_postgres(parquet: Path, folder: Path, queries: np.ndarray, truth: list[list], args) -> list[dict]:
    """Bulk load + HNSW build, the cold figures at the ``ef_search`` this size gets by default, then warm p50/p99
    and recall at each ``--pg-ef-search`` value on the same index (one row each)."""
    from clipforge.index import Index
    from clipforge.testing.postgres import fresh_database, postgres_server

    with postgres_server() as server:
        url = fresh_database(server, "bench")
        start = time.perf_counter()
        with Index(url, folder, build_memory=args.pg_build_memory) as idx:
            idx.add_embeddings(parquet, bulk=True)
            built = time.perf_counter() - start
            size = idx.backend.conn.execute("SELECT pg_total_relation_size('clipforge.images')").fetchone()[0]
        with Index(url, folder) as idx:
            chosen = idx.backend.ef_search  # what an index of this size searches with by default
        dim, repeats = queries.shape[1], args.cold_repeats
        cold = cold_rss(url, False, repeats) | backend_cold(url, dim, False, repeats)
        rows = []
        for ef in map(int, args.pg_ef_search.split(",")):
            with Index(url, folder, ef_search=ef) as idx:
                w, found = warm(idx, queries, exact=False)
            default = ef == chosen
            label = f"postgres + pgvector HNSW, ef_search {ef}" + (" (default at this size)" if default else "")
            rows.append(
                {
                    "engine": label,
                    "build_s": round(built, 1),
                    "mb": round(size / 1e6, 1),
                    **(cold if default else {}),
                    **w,
                    "recall@10": recall(found, truth),
                    "note": "cold_s/rss: the client process (the server runs beside it), default ef_search",
                }
            )
        return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--dims", default="512,768")
    parser.add_argument("--data", choices=("lowrank", "uniform"), default="lowrank")
    parser.add_argument("--pg-max", type=int, default=100_000, help="PostgreSQL only up to this many rows")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--engines", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--pg-build-memory", default="1GB", help="maintenance_work_mem of the HNSW build")
    parser.add_argument("--pg-ef-search", default="100,200,400", help="hnsw.ef_search values measured warm")
    parser.add_argument("--quantize", default="int8-dynamic", help="the model's build: int8-dynamic or none (fp32)")
    parser.add_argument("--cold-repeats", type=int, default=5, help="fresh processes per cold figure (median)")
    args = parser.parse_args()
    engines = set(args.engines.split(","))
    results = []
    for n in map(int, args.sizes.split(",")):
        for dim in map(int, args.dims.split(",")):
            if dim != 512 and n > 100_000:
                continue  # 768-d at 100k only
            folder = model(dim, args.quantize)
            x = vectors(n, dim, args.data, seed=0)
            queries = vectors(args.queries, dim, args.data, seed=1)
            work = WORK / f"search-{args.data}-{n}-{dim}-{args.quantize}"
            work.mkdir(parents=True, exist_ok=True)
            parquet = work / "embeddings.parquet"
            write_parquet(parquet, x, folder)
            rows, truth = ([], exact_truth(x, queries)) if "sqlite" not in engines else ([], None)
            del x
            if "sqlite" in engines:
                rows, truth = run_sqlite(work / "photos.db", parquet, folder, queries, args.cold_repeats)
            if "postgres" in engines and n <= args.pg_max:
                try:
                    rows.extend(run_postgres(parquet, folder, queries, truth, args))
                except ImportError as exc:
                    rows.append({"engine": "postgres", "skipped": str(exc)})
            for row in rows:
                results.append({"n": n, "dim": dim, "data": args.data, **row})
                print(results[-1], flush=True)
    header = ("n", "dim", "engine", "build_s", "mb", "cold_s", "rss_mb", "search_cold_s", "search_rss_mb", "p50_ms")
    header += ("p99_ms", "recall@10")
    print("\n" + " | ".join(header))
    for r in results:
        print(" | ".join(str(r.get(h, "")) for h in header))
    print(json.dumps({"cpu": cpu(), "model": args.quantize, "results": results}))


if __name__ == "__main__":
    main()
