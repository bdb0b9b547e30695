"""Side by side: the embedded ANN libraries that could back SQLite search (usearch, faiss-cpu, hnswlib,
sqlite-vec), on N random 512-d unit vectors: build time, file size, cold open + first query in a fresh process
(memory-mapped where the library can), warm query time, recall@10 against exact numpy. Prints a table + JSON.

    python benchmarks/bench_ann_libs.py --n 100000 --dim 512 --out /tmp/annb

``--data uniform``: uniform random unit vectors, queries too (the worst case: every point is about equally far
from every other, no graph has structure to follow); ``--data lowrank``: 32 latent factors mapped into DIM
dimensions plus noise (embeddings of photos have a low intrinsic dimension), queries drawn the same way."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

M, EF_ADD, EF_SEARCH, K = 16, 128, 64, 10


def data(n: int, dim: int, queries: int, kind: str = "uniform", seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n + queries, dim), dtype=np.float32)
    else:
        mixing = rng.standard_normal((32, dim), dtype=np.float32)
        x = rng.standard_normal((n + queries, 32), dtype=np.float32) @ mixing
        x += 0.3 * np.linalg.norm(mixing, axis=0).mean() * rng.standard_normal((n + queries, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def exact(x, q):
    return np.argsort(-(q @ x.T), axis=1)[:, :K]


def recall(found, truth):
    return float(np.mean([len(set(f[:K]) & set(t)) / K for f, t in zip(found, truth)]))


def build(lib: str, x: np.ndarray, out: Path) -> Path:
    n, dim = x.shape
    if lib.startswith("usearch"):
        from usearch.index import Index

        index = Index(ndim=dim, metric="cos", dtype=lib.split("-")[1], connectivity=M, expansion_add=EF_ADD)
        index.add(np.arange(n), x, threads=2)
        path = out / f"{lib}.usearch"
        index.save(str(path))
    elif lib == "faiss":
        import faiss

        index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_ADD
        index.add(x)
        path = out / "faiss.index"
        faiss.write_index(index, str(path))
    elif lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, M=M, ef_construction=EF_ADD)
        index.add_items(x, np.arange(n), num_threads=2)
        path = out / "hnswlib.bin"
        index.save_index(str(path))
    elif lib == "sqlite-vec":
        import apsw
        import sqlite_vec

        path = out / "vec.db"
        path.unlink(missing_ok=True)
        conn = apsw.Connection(str(path))
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{dim}] distance_metric=cosine)")
        with conn:
            conn.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, x[i].tobytes()) for i in range(n)))
        conn.close()
    return path


def opener(lib: str, path: Path, dim: int, n: int):
    """Open the saved index and return ``search(q) -> ids``."""
    if lib.startswith("usearch"):
        from usearch.index import Index

        index = Index.restore(str(path), view=True)
        index.expansion_search = EF_SEARCH
        return lambda q: index.search(q, K).keys
    if lib == "faiss":
        import faiss

        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        index.hnsw.efSearch = EF_SEARCH
        return lambda q: index.search(q[None], K)[1][0]
    if lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path), max_elements=n)
        index.set_ef(EF_SEARCH)
        return lambda q: index.knn_query(q, K)[0][0]
    import apsw
    import sqlite_vec

    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    sql = "SELECT rowid FROM v WHERE embedding MATCH ? AND k = ?"
    return lambda q: np.array([r[0] for r in conn.execute(sql, (q.tobytes(), K))])


def child(lib: str, path: str, dim: int, n: int, qfile: str) -> None:
    """The cold measurement, in a fresh process: open + first query, then warm queries and recall."""
    start = time.perf_counter()
    search = opener(lib, Path(path), dim, n)
    q = np.load(qfile)
    first = search(q[0])
    cold = time.perf_counter() - start
    times, found = [], [first]
    for row in q[1:]:
        t = time.perf_counter()
        found.append(search(row))
        times.append(time.perf_counter() - t)
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ids = np.array([np.asarray(f)[:K] for f in found])
    np.save(qfile + f".{lib}.npy", ids)
    print(
        json.dumps(
            {
                "cold_s": cold,
                "p50_ms": 1e3 * np.median(times),
                "p99_ms": 1e3 * np.quantile(times, 0.99),
                "peak_rss_mb": rss,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--libs", default="usearch-f32,usearch-f16,usearch-i8,faiss,hnswlib,sqlite-vec")
    parser.add_argument("--data", choices=("uniform", "lowrank"), default="lowrank")
    parser.add_argument("--out", default="/tmp/bench_ann_libs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, q = data(args.n, args.dim, args.queries, args.data)
    truth = exact(x, q)
    qfile = str(out / "queries.npy")
    np.save(qfile, q)
    rows = []
    for lib in args.libs.split(","):
        start = time.perf_counter()
        path = build(lib, x, out)
        built = time.perf_counter() - start
        res = subprocess.run(
            [sys.executable, __file__, "--child", lib, str(path), str(args.dim), str(args.n), qfile],
            capture_output=True,
            text=True,
            check=True,
        )
        cold = json.loads(res.stdout.strip().splitlines()[-1])
        found = np.load(qfile + f".{lib}.npy")
        rows.append(
            {
                "lib": lib,
                "build_s": round(built, 1),
                "mb": round(os.path.getsize(path) / 1e6, 1),
                **{k: round(v, 3) for k, v in cold.items()},
                "recall@10": round(recall(found, truth), 3),
            }
        )
        print(rows[-1], flush=True)
    print(
        json.dumps(
            {
                "n": args.n,
                "dim": args.dim,
                "data": args.data,
                "M": M,
                "ef_add": EF_ADD,
                "ef_search": EF_SEARCH,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
