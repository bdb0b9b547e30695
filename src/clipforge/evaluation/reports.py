"""Evaluation reports: JSON for machines, a markdown table (like the seeds' results table) and a rich table."""

from __future__ import annotations

import json
from pathlib import Path

from clipforge._io import atomic_file


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(report: dict) -> str:
    rows = ["| Model | Dataset | Samples | Templates | HF baseline (fp32, CPU) top-1 | ONNX top-1 | Δ | ONNX top-5 |",
            "|---|---|---|---|---|---|---|---|"]
    onnx, base = report["onnx"], report.get("baseline")
    delta = onnx["top1"] - base["top1"] if base else None
    rows.append(f"| {report['model']} | {report['dataset']} | {onnx['evaluated']} | {report['templates']} | "
                f"{_fmt(base and base['top1'])} | {_fmt(onnx['top1'])} | "
                f"{'–' if delta is None else f'{delta:+.1f}'} | {_fmt(onnx['top5'])} |")
    return "\n".join(rows) + "\n"


def write_json(path: Path, report: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))


def write_markdown(path: Path, report: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(markdown(report))


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zero-shot {report['task']} on {report['dataset']}")
    for column in ("model", "top-1", "top-5", "mean per-class recall", "unreadable", "seconds"):
        table.add_column(column)
    for name in ("onnx", "baseline"):
        if r := report.get(name):
            table.add_row("clipforge ONNX" if name == "onnx" else "PyTorch (transformers)", _fmt(r["top1"]),
                          _fmt(r["top5"]), _fmt(r["mean_per_class_recall"]), str(r["unreadable"]), f"{r['seconds']:.1f}")
    Console().print(table)
