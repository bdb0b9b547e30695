"""The Ray engine's overhead on one machine, and pgvector's insert rate (for docs/scale.md's projection).

On the same N generated JPEGs (default 300) and a random-weight ViT-B/32-shaped CLIP (fp32 ONNX), measured
side by side in one run, interleaved, median over repeats:
  - ``clipforge embed`` with the local engine (one process, onnxruntime on all cores);
  - ``clipforge embed --engine ray`` with 1 worker x 2 CPUs and with 2 workers x 1 CPU, on a local Ray instance
    started once before the timings (as a running cluster would be); each timing includes starting the workers
    and loading the model in them, as the local timing includes loading the model.
Then rows/s of batched upserts (32 rows per transaction, as a worker commits) of 512-d vectors into a private
PostgreSQL 16 + pgvector 0.6.2 (pgserver wheel), with the HNSW index in place (the schema as created) and
without it, and the rate of building the HNSW index afterwards; and a projection for 10 M and 100 M images.
Usage:
    python benchmarks/bench_ray.py [--images 300] [--repeats 3] [--inserts 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _common import WORK, b32_export, images

from clipforge.runtime.cpu import describe

CONFIGS = {"local": None, "ray 1x2": (1, 2), "ray 2x1": (2, 1)}


def jpeg_folder(n: int) -> Path:
    folder = WORK / f"jpegs-{n}"
    if len(list(folder.glob("*.jpg"))) != n:
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images(n)):
            image.save(folder / f"{i:04d}.jpg", quality=90)
    return folder


def embed_local(paths: list[Path], model: Path, out: Path) -> tuple[float, float]:
    """What ``clipforge embed`` does with the local engine: (total seconds, seconds to load the model)."""
    import numpy as np

    from clipforge.cli.embed import _write
    from clipforge.runtime.batches import iter_image_batches
    from clipforge.runtime.model import ZeroShotModel

    start = time.perf_counter()
    zs = ZeroShotModel.from_onnx(model)
    loaded = time.perf_counter() - start
    names, chunks, failures = [], [], []
    for batch in iter_image_batches(paths, 32, failures, show=False):
        names += [str(n) for n in batch.names]
        chunks.append(zs.embed_images(batch.images, 32))
    _write(out, names, np.concatenate(chunks))
    return time.perf_counter() - start, loaded


def embed_ray(config, paths: list[Path], model: Path, out: Path) -> tuple[float, float]:
    """``clipforge embed --engine ray``: (total seconds, seconds until the first batch came back)."""
    from clipforge.distributed.ray import RayOptions, embed_to_parquet

    start = time.perf_counter()
    stats, written = embed_to_parquet(
        paths, model, out, RayOptions(workers=config[0], cpus_per_worker=config[1]), show=False
    )
    if written != len(paths):
        sys.exit(f"ray {config}: {written} of {len(paths)} embedded")
    return time.perf_counter() - start, stats.first_result_seconds


def embed_once(config, paths: list[Path], model: Path, out: Path) -> tuple[float, float]:
    return embed_local(paths, model, out) if config is None else embed_ray(config, paths, model, out)


def _upserts(backend, vectors, batch: int) -> float:
    from clipforge.index.base import Row

    start = time.perf_counter()
    for i in range(0, len(vectors), batch):
        backend.apply(
            [Row(f"/img/{j}.jpg", 1000, 0.0, f"{j:064d}", vectors[j]) for j in range(i, min(i + batch, len(vectors)))]
        )
    return len(vectors) / (time.perf_counter() - start)


def insert_rates(rows: int, dim: int = 512, batch: int = 32) -> dict[str, float]:
    """Rows/s of batched upserts through the index's PostgreSQL back-end, one writer: with the HNSW index
    maintained on every insert (the schema as created), without it, and of building it afterwards."""
    import numpy as np

    from clipforge.index.base import ModelRecord
    from clipforge.index.postgres import PostgresBackend
    from clipforge.testing.postgres import fresh_database, postgres_server

    vectors = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    record = ModelRecord("clip", "bench", "/nowhere", "0" * 64, dim, {})
    out = {}
    with postgres_server() as url:
        for with_index in (True, False):
            backend = PostgresBackend(fresh_database(url, "bench"))
            backend.set_model_record(record)
            if not with_index:
                backend.conn.execute("DROP INDEX clipforge.images_embedding_hnsw")
            out["upserts_with_hnsw" if with_index else "upserts_without_index"] = _upserts(backend, vectors, batch)
            if not with_index:
                start = time.perf_counter()
                backend.conn.execute(
                    "CREATE INDEX images_embedding_hnsw ON clipforge.images USING hnsw (embedding vector_cosine_ops)"
                )
                out["hnsw_build_rows"] = rows / (time.perf_counter() - start)
            backend.close()
    return {k: round(v, 1) for k, v in out.items()}


def projection(per_core: float, pg: dict[str, float], node_cores: int, days: float) -> list[dict]:
    """Hours and nodes for 10 M and 100 M images from the measured per-core rate (Ray, 2 workers x 1 CPU,
    assumed to scale linearly over cores: workers share nothing) and the single-writer pgvector rates (HNSW
    build time grows a little faster than linearly: a lower bound)."""
    rows = []
    for n in (10_000_000, 100_000_000):
        core_hours = n / per_core / 3600
        row = {
            "images": n,
            "core_hours": round(core_hours),
            "node_cores": node_cores,
            f"nodes_for_{days:g}_days": int(-(-core_hours // (node_cores * 24 * days))),
            "hours_on_10_nodes": round(core_hours / (10 * node_cores), 1),
        }
        if pg:
            row["pg_hours_upserting_with_hnsw"] = round(n / pg["upserts_with_hnsw"] / 3600, 1)
            row["pg_hours_bulk_then_build_hnsw"] = round(
                (n / pg["upserts_without_index"] + n / pg["hnsw_build_rows"]) / 3600, 1
            )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inserts", type=int, default=20000, help="rows for the pgvector insert rate (0: skip)")
    parser.add_argument("--node-cores", type=int, default=32, help="cores per node in the projection")
    parser.add_argument("--days", type=float, default=1.0, help="wall time the projection's node count aims at")
    args = parser.parse_args()
    import ray

    paths, model = sorted(jpeg_folder(args.images).glob("*.jpg")), b32_export()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    times, startup = {name: [] for name in CONFIGS}, {name: [] for name in CONFIGS}
    try:
        for _ in range(args.repeats):
            for name, config in CONFIGS.items():
                total, first = embed_once(config, paths, model, WORK / f"bench-{name.replace(' ', '')}.parquet")
                times[name].append(total)
                startup[name].append(first)
    finally:
        ray.shutdown()
    rates = {name: args.images / statistics.median(t) for name, t in times.items()}
    report = {
        "cpu": describe(),
        "images": args.images,
        "repeats": args.repeats,
        "model": "random-weight CLIP ViT-B/32 (fp32 ONNX)",
        "img_per_s": {k: round(v, 2) for k, v in rates.items()},
        "ray_vs_local": {k: round(v / rates["local"], 3) for k, v in rates.items() if k != "local"},
        "seconds": {k: [round(x, 2) for x in t] for k, t in times.items()},
        "startup_seconds": {k: [round(x, 2) for x in t] for k, t in startup.items()},
        "startup_note": "local: model load; ray: until the first batch came back (workers started, model "
        "loaded, one batch embedded; Ray Data may hold results back, so this overstates start-up)",
    }
    if args.inserts:
        report["pgvector_rows_per_s"] = insert_rates(args.inserts)
        report["pgvector_rows"] = args.inserts
    report["per_core_img_per_s"] = round(rates["ray 2x1"] / 2, 2)
    report["projection"] = projection(
        rates["ray 2x1"] / 2, report.get("pgvector_rows_per_s", {}), args.node_cores, args.days
    )
    print(json.dumps(report, indent=2))
    for name, ratio in report["ray_vs_local"].items():
        print(
            f"{name}: {rates[name]:.2f} img/s = {ratio:.2f}x local ({rates['local']:.2f} img/s); "
            f"target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
