"""Accuracy x latency for several builds: eval top-1 and image-encoder throughput, one table and one chart."""

from __future__ import annotations

from pathlib import Path

from clipforge._io import atomic_file
from clipforge.evaluation.classify_eval import evaluate_classification
from clipforge.models import open_model
from clipforge.perf.sweep import run_one, targets_for


def accuracy_vs_speed(builds: list[str], data, templates: list[str], batch: int, perf_opts: dict) -> list[dict]:
    rows = []
    for build in builds:
        model = open_model(build, show_progress=False)  # a folder as is; else exported once
        result = evaluate_classification(model, data, templates, show=False)
        image = next(t for t in targets_for(build) if t.encoder == "image-encoder")
        speed = run_one(image, batch, perf_opts)
        rows.append(
            {
                "build": build,
                "top1": result["top1"],
                "top5": result["top5"],
                "images_per_s": speed["items_per_s"],
                "p50_ms": speed["p50_ms"],
                "batch": speed["batch"],
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["images_per_s"], r["top1"])
        ax.annotate(Path(r["build"]).name, (r["images_per_s"], r["top1"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel(f"image encoder images/s (batch {rows[0]['batch'] if rows else '?'})")
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
