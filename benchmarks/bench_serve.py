"""Loopback load test of ``clipforge serve`` on an int8 (dynamic) ViT-B/32-shaped CLIP build (random weights),
dynamic batching on vs ``--max-batch 1``, with 1, 4 and 16 concurrent clients each sending one image per
``POST /v1/embeddings`` request. Bounded: ``--requests`` per level and at most ``--duration`` seconds per level.

Both servers run at once and each level alternates between them for ``--rounds`` rounds (medians), so drift in
a shared machine's load hits both alike. Prints, per server mode and client count: throughput (images/s),
p50/p99 latency, errors, and the mean batch size the server ran (from /metrics). Then the server's overhead
(HTTP + JSON + base64 + decode, and the client threads sharing the machine) vs ``ZeroShotModel.embed_images``
on the same encoded images at the same batch size, in this process. All figures come from this one run, side by side.
    python benchmarks/bench_serve.py [--requests 96] [--duration 60] [--clients 1,4,16] [--rounds 3]
The build is cached under $CLIPFORGE_BENCH_DIR (default: the temp dir); the first run takes a few minutes.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import threading
import time
from pathlib import Path

from _common import WORK, b32_checkpoint, images

from clipforge.runtime.cpu import describe

MODES = {
    "batching": ["--max-batch", "32", "--max-wait-ms", "5"],
    "max-batch-1": ["--max-batch", "1", "--max-wait-ms", "0"],
}


def int8_build():
    from clipforge.builder import build_composite

    return build_composite(
        b32_checkpoint(), WORK / "clip-b32-int8-dynamic", quantize="int8-dynamic", show_progress=False
    ).path


def encoded_images(n: int) -> list[bytes]:
    out = []
    for image in images(n):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
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
                reply = request(
                    "POST",
                    url + "/v1/embeddings",
                    data=bodies[i % len(bodies)],
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
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
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": errors[0],
        "wall_s": round(wall, 3),
        "images_per_s": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_stats(url: str) -> tuple[int, float]:
    from clipforge.testing.server import request

    text = request("GET", url + "/metrics").body.decode()
    count = re.search(r'clipforge_batch_size_count\{encoder="image"\} (\d+)', text)
    total = re.search(r'clipforge_batch_size_sum\{encoder="image"\} ([\d.]+)', text)
    return (int(count.group(1)), float(total.group(1))) if count else (0, 0.0)


def serve_runs(folder, payloads, args, direct_model) -> tuple[dict, dict]:
    """Both servers run side by side; every level alternates between them for ``--rounds`` rounds (medians),
    and ``embed_images`` is timed in-process in the same rounds at the 16-client level."""
    from clipforge.testing.server import ServerProcess

    servers = {mode: ServerProcess(["-m", str(folder), *flags]) for mode, flags in MODES.items()}
    raw = {mode: {c: [] for c in args.clients} for mode in MODES}
    direct: dict[int, list[tuple[float, float]]] = {}
    batch = None
    try:
        for srv in servers.values():
            srv.start()
            load(srv.url, payloads[:8], 4, 8, args.duration)  # warm-up
        for clients in args.clients:
            for _ in range(args.rounds):
                for mode, srv in servers.items():
                    before, cpu = batch_stats(srv.url), cpu_seconds(srv.proc.pid)
                    row = load(srv.url, payloads, clients, args.requests, args.duration)
                    after, cpu = batch_stats(srv.url), cpu_seconds(srv.proc.pid) - cpu
                    row["mean_batch"] = (after[1] - before[1]) / max(1, after[0] - before[0])
                    row["server_cpu_ms_per_image"] = 1000 * cpu / max(1, row["requests"])
                    raw[mode][clients].append(row)
                if clients == max(args.clients):  # the batch size the server ran in its first round
                    batch = batch or max(1, round(raw["batching"][clients][-1]["mean_batch"]))
                    for b in sorted({1, batch}):
                        direct.setdefault(b, []).append(direct_rate(direct_model, payloads, b))
    finally:
        for srv in servers.values():
            srv.stop()
    medians = {b: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v)) for b, v in direct.items()}
    return {mode: [_median_row(rows) for rows in by_clients.values()] for mode, by_clients in raw.items()}, medians


def _median_row(rows: list[dict]) -> dict:
    """The round with the median throughput; errors summed over all rounds."""
    ranked = sorted(rows, key=lambda r: r["images_per_s"])
    row = dict(ranked[len(ranked) // 2])
    row["errors"] = sum(r["errors"] for r in rows)
    row["rounds_images_per_s"] = [round(r["images_per_s"], 2) for r in rows]
    return row


def direct_rate(model, payloads, batch_size: int) -> tuple[float, float]:
    """``ZeroShotModel.embed_images`` on the same encoded images at ``batch_size``: images/s, CPU ms/image."""
    model.embed_images(payloads[:batch_size], batch_size=batch_size)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    model.embed_images(payloads, batch_size=batch_size)
    return len(payloads) / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / len(payloads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=96, help="requests per client-count level")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds at most per level")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level (medians)")
    args = parser.parse_args()
    from clipforge.runtime.model import ZeroShotModel

    folder = int8_build()
    payloads = encoded_images(32)
    runs, direct = serve_runs(folder, payloads, args, ZeroShotModel.from_onnx(folder))
    summary = summarise(runs, direct, max(args.clients))
    summary.update(cpu=describe(), build=str(folder))
    print(json.dumps(summary, indent=2))
    print_table(summary, args.rounds)


def summarise(runs: dict, direct: dict, top: int) -> dict:
    """Wall-clock ratios, and the same ratios in CPU time of the server process per image (less sensitive to
    other processes on a shared machine than throughput)."""
    on = next(r for r in runs["batching"] if r["clients"] == top)
    off = next(r for r in runs["max-batch-1"] if r["clients"] == top)
    batch = max(direct)
    (rate_b, cpu_b), (rate_1, cpu_1) = direct[batch], direct[1]
    return {
        "runs": runs,
        "top_clients": top,
        "direct_batch": batch,
        "direct": {b: {"images_per_s": r, "cpu_ms_per_image": c} for b, (r, c) in direct.items()},
        "batching_speedup": on["images_per_s"] / off["images_per_s"],
        "batching_speedup_cpu": off["server_cpu_ms_per_image"] / on["server_cpu_ms_per_image"],
        "encoder_batch_gain": rate_b / rate_1,
        "encoder_batch_gain_cpu": cpu_1 / cpu_b,
        "overhead": rate_b / on["images_per_s"] - 1,
        "overhead_cpu": on["server_cpu_ms_per_image"] / cpu_b - 1,
        "overhead_batch_1": rate_1 / off["images_per_s"] - 1,
        "overhead_batch_1_cpu": off["server_cpu_ms_per_image"] / cpu_1 - 1,
        "errors": sum(r["errors"] for rows in runs.values() for r in rows),
    }


def print_table(s: dict, rounds: int) -> None:
    top, batch = s["top_clients"], s["direct_batch"]
    cpu = s["cpu"]
    print(
        f"\n{cpu['model']}, {cpu['cores']} cores, flags: {' '.join(cpu['flags']) or 'none'}"
        " (wall-clock figures are noisy on a shared machine)"
    )
    print(
        f"{'mode':12} {'clients':>7} {'img/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'batch':>6} "
        f"{'cpu ms/img':>10}"
    )
    for mode, rows in s["runs"].items():
        for r in rows:
            print(
                f"{mode:12} {r['clients']:7d} {r['images_per_s']:7.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                f"{r['errors']:6d} {r['mean_batch']:6.1f} {r['server_cpu_ms_per_image']:10.1f}"
            )
    rates = ", ".join(
        f"batch {b}: {d['images_per_s']:.1f} img/s, {d['cpu_ms_per_image']:.1f} cpu ms/img"
        for b, d in s["direct"].items()
    )
    print(f"embed_images in-process (medians of {rounds}): {rates}")
    print(
        f"batching vs --max-batch 1 at {top} clients: {s['batching_speedup']:.2f}x wall, "
        f"{s['batching_speedup_cpu']:.2f}x per CPU second (target >= 1.3x; embed_images itself gains "
        f"{s['encoder_batch_gain']:.2f}x wall / {s['encoder_batch_gain_cpu']:.2f}x CPU from batch 1 to {batch})"
    )
    print(
        f"server overhead vs embed_images at batch {batch}: {100 * s['overhead']:.1f}% wall, "
        f"{100 * s['overhead_cpu']:.1f}% CPU; at batch 1 (--max-batch 1): {100 * s['overhead_batch_1']:.1f}% wall, "
        f"{100 * s['overhead_batch_1_cpu']:.1f}% CPU (target <= 15%)"
    )
    print(f"errors: {s['errors']} (target 0)")


if __name__ == "__main__":
    main()
