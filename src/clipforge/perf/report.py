"""Perf results as tables that fit 80 columns (the speed table, and the roofline table with ``--roofline``) and
a throughput chart (PNG)."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from clipforge import output
from clipforge._io import atomic_file
from clipforge.specs import ROLES

KEY = "variant / encoder / runtime"
SPEED = (KEY, "batch", "load s", "first s", "p50 ms", "p90 ms", "p99 ms", "items/s", "peak MB")
ROOFLINE = (KEY, "batch", "items/s", "limit/s", "% of limit")


def _folder(r: dict) -> str | None:
    """The folder a row's graph came from: OUT for OUT/<encoder>/model.onnx, else the graph's folder."""
    if not r.get("model"):
        return None
    graph = Path(r["model"]).parent
    return str(graph.parent if graph.name in ROLES else graph)


def _names(rows: list[dict]) -> list[str]:
    """The variant shown for each row: its folder's name, or the folder's path where two folders share a name."""
    folders: dict[str, set] = {}
    for r in rows:
        folders.setdefault(r["variant"], set()).add(_folder(r))
    return [r["variant"] if len(folders[r["variant"]]) == 1 else _folder(r) or r["variant"] for r in rows]


def _add_groups(table, rows: list[dict], cells) -> None:
    """One group of rows per variant, encoder and runtime: the key (one line each) on its first row only."""
    keys = [
        (name, r["encoder"], f"{r.get('backend', '')} {r.get('precision', '')}".strip())
        for name, r in zip(_names(rows), rows)
    ]
    for key, group in groupby(zip(keys, rows), key=lambda pair: pair[0]):
        group = [r for _, r in group]
        for i, r in enumerate(group):
            table.add_row("\n".join(key) if i == 0 else "", *cells(r), end_section=i == len(group) - 1)


def speed_table(rows: list[dict]):
    table = output.table("clipforge perf (each row measured in its own process)", SPEED, numeric=SPEED[1:])
    _add_groups(
        table,
        rows,
        lambda r: (
            str(r["batch"]),
            f"{r['load_s']:.2f}",
            _seconds(r.get("first_s")),
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['items_per_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
        ),
    )
    return table


def _seconds(value) -> str:
    return "" if value is None else f"{value:.2f}"


def roofline_table(rows: list[dict]):
    table = output.table(
        "roofline: the matmul limit of this machine in the row's precision, and the fraction reached",
        ROOFLINE,
        numeric=ROOFLINE[1:],
    )
    _add_groups(
        table,
        rows,
        lambda r: (
            str(r["batch"]),
            f"{r['items_per_s']:.1f}",
            *((f"{r['limit_per_s']:.1f}", f"{100 * r['fraction']:.1f}") if "fraction" in r else ("", "")),
        ),
    )
    return table


def print_table(rows: list[dict]) -> None:
    output.show(speed_table(rows))
    if any("fraction" in r for r in rows):
        output.say("", stderr=False)
        output.show(roofline_table(rows))


def plot_throughput(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["encoder"], r["batch"]) for r in rows})
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    width = 0.8 / max(1, len(variants))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(groups)), 4))
    for i, v in enumerate(variants):
        values = [
            next((r["items_per_s"] for r in rows if r["variant"] == v and (r["encoder"], r["batch"]) == g), 0)
            for g in groups
        ]
        ax.bar([j + i * width for j in range(len(groups))], values, width, label=v)
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{e}\nbatch {b}" for e, b in groups])
    ax.set_ylabel("items / s")
    ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
