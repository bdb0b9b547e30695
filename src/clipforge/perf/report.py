"""Perf results as a rich table and a throughput chart (PNG)."""

from __future__ import annotations

from pathlib import Path


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="clipforge perf (each row measured in its own process)")
    roofline = any("fraction" in r for r in rows)
    columns = ["variant", "encoder", "backend", "batch", "load s", "p50 ms", "p90 ms", "p99 ms", "items/s", "peak MB"]
    for column in columns + (["limit/s", "% limit"] if roofline else []):
        table.add_column(column, justify="left" if column in ("variant", "encoder", "backend") else "right")
    for r in rows:
        cells = [r["variant"], r["encoder"], f"{r.get('backend', '')}/{r.get('precision', '')}", str(r["batch"]),
                 f"{r['load_s']:.2f}", f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{r['p99_ms']:.1f}",
                 f"{r['items_per_s']:.1f}", f"{r['peak_rss_mb']:.0f}"]
        if roofline:
            cells += [f"{r['limit_per_s']:.1f}", f"{100 * r['fraction']:.1f}"] if "fraction" in r else ["", ""]
        table.add_row(*cells)
    Console().print(table)


def plot_throughput(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clipforge._io import atomic_file

    groups = sorted({(r["encoder"], r["batch"]) for r in rows})
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    width = 0.8 / max(1, len(variants))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(groups)), 4))
    for i, v in enumerate(variants):
        values = [next((r["items_per_s"] for r in rows if r["variant"] == v and (r["encoder"], r["batch"]) == g), 0)
                  for g in groups]
        ax.bar([j + i * width for j in range(len(groups))], values, width, label=v)
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{e}\nbatch {b}" for e, b in groups])
    ax.set_ylabel("items / s")
    ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
