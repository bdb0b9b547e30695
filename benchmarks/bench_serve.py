"""Loopback load test of ``clipforge serve`` on an int8 (dynamic) ViT-B/32-shaped CLIP build (random weights),
dynamic batching on vs ``--max-batch 1``, with 1, 4 and 16 concurrent clients each sending one image per
``POST /v1/embeddings`` request. Bounded: ``--requests`` per level and at most ``--duration`` seconds per level.

Prints, per server mode and client count: throughput (images/s), p50/p99 latency, errors, and the mean batch
size the server ran (from /metrics). Then the server's overhead (HTTP + JSON + base64 + decode, and the
client threads sharing the machine) vs ``ZeroShotModel.embed_images`` on the same encoded images at the same
batch size, in this process. All figures come from this one run, side by side.
    python benchmarks/bench_serve.py [--requests 96] [--duration 60] [--clients 1,4,16]
The build is cached under $CLIPFORGE_BENCH_DIR (default: the temp dir); the first run takes a few minutes.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import platform
import re
import statistics
import threading
import time

from _common import WORK, b32_checkpoint, images

MODES = {"batching": ["--max-batch", "32", "--max-wait-ms", "5"], "max-batch-1": ["--max-batch", "1",
                                                                                  "--max-wait-ms", "0"]}


def int8_build():
    from clipforge.builder import build_composite

    return build_composite(b32_checkpoint(), WORK / "clip-b32-int8-dynamic", quantize="int8-dynamic",
                           show_progress=False).path


def encoded_images(n: int) -> list[bytes]:
    out = []
    for i, image in enumerate(images(n)):
        buf = io.BytesIO()
        image.save(buf, "JPEG" if i % 2 else "PNG", quality=90)
        out.append(buf.getvalue())
    return out


def load(url: str, payloads: list[bytes], clients: int, requests: int, duration: float) -> dict:
    """``clients`` threads send ``requests`` single-image requests in total (or stop at ``duration``)."""
    from clipforge.testing.server import request

    bodies = [json.dumps({"input": [base64.b64encode(p).decode()], "modality": "image"}).encode() for p in payloads]
    lock, counter, latencies, errors = threading.Lock(), [0], [], [0]
    deadline = time.monotonic() + duration

    def client():
        while time.monotonic() < deadline:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= requests:
                return
            start = time.perf_counter()
            try:
                reply = request("POST", url + "/v1/embeddings", data=bodies[i % len(bodies)],
                                headers={"Content-Type": "application/json"}, timeout=60)
                ok = reply.status == 200 and len(json.loads(reply.body)["data"]) == 1
            except OSError:
                ok = False
            with lock:
                latencies.append(time.perf_counter() - start)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "wall_s": round(wall, 3),
            "images_per_s": len(lat) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


def batch_stats(url: str) -> tuple[int, float]:
    from clipforge.testing.server import request

    text = request("GET", url + "/metrics").body.decode()
    count = re.search(r'clipforge_batch_size_count\{encoder="image"\} (\d+)', text)
    total = re.search(r'clipforge_batch_size_sum\{encoder="image"\} ([\d.]+)', text)
    return (int(count.group(1)), float(total.group(1))) if count else (0, 0.0)


def serve_runs(folder, payloads, args) -> dict:
    from clipforge.testing.server import ServerProcess

    results = {}
    for mode, flags in MODES.items():
        with ServerProcess(["-m", str(folder), *flags]) as srv:
            load(srv.url, payloads[:8], 4, 8, args.duration)  # warm-up
            rows = []
            for clients in args.clients:
                before = batch_stats(srv.url)
                row = load(srv.url, payloads, clients, args.requests, args.duration)
                after = batch_stats(srv.url)
                runs = after[0] - before[0]
                row["mean_batch"] = (after[1] - before[1]) / runs if runs else 0.0
                rows.append(row)
            results[mode] = rows
    return results


def direct_rate(folder, payloads, batch_size: int, repeats: int) -> float:
    """``ZeroShotModel.embed_images`` on the same encoded images, images/s (median of repeats)."""
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(folder)
    model.embed_images(payloads[:batch_size], batch_size=batch_size)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.embed_images(payloads, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    return len(payloads) / statistics.median(times)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=96, help="requests per client-count level")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds at most per level")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import os

    folder = int8_build()
    payloads = encoded_images(32)
    runs = serve_runs(folder, payloads, args)
    top = max(args.clients)
    on = next(r for r in runs["batching"] if r["clients"] == top)
    off = next(r for r in runs["max-batch-1"] if r["clients"] == top)
    batch = max(1, round(on["mean_batch"]))
    direct = {b: direct_rate(folder, payloads * 2, b, args.repeats) for b in sorted({1, batch})}
    summary = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "build": str(folder), "runs": runs,
        "direct_images_per_s": direct,
        f"batching_speedup_at_{top}_clients": on["images_per_s"] / off["images_per_s"],
        "overhead_batching_vs_direct": direct[batch] / on["images_per_s"] - 1,
        "overhead_max_batch_1_vs_direct": direct[1] / off["images_per_s"] - 1,
        "errors": sum(r["errors"] for rows in runs.values() for r in rows),
    }
    print(json.dumps(summary, indent=2))
    print(f"\n{summary['cpu']}, {summary['cores']} cores (shared machine: figures are noisy)")
    print(f"{'mode':12} {'clients':>7} {'img/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6}")
    for mode, rows in runs.items():
        for r in rows:
            print(f"{mode:12} {r['clients']:7d} {r['images_per_s']:7.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                  f"{r['errors']:6d} {r['mean_batch']:6.1f}")
    print(f"batching vs --max-batch 1 at {top} clients: {summary[f'batching_speedup_at_{top}_clients']:.2f}x "
          "(target >= 1.3x)")
    print(f"embed_images in-process: " + ", ".join(f"batch {b}: {v:.1f} img/s" for b, v in direct.items()))
    print(f"server overhead vs embed_images at batch {batch}: {100 * summary['overhead_batching_vs_direct']:.1f}%; "
          f"--max-batch 1 vs batch 1: {100 * summary['overhead_max_batch_1_vs_direct']:.1f}% (target <= 15%)")
    print(f"errors: {summary['errors']} (target 0)")


if __name__ == "__main__":
    main()
