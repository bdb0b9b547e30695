"""``clipforge report``: accuracy x latency of several builds in one table and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge.data.labelled import load_eval_data
from clipforge.evaluation.combined import accuracy_vs_speed, plot as draw
from clipforge.zeroshot.templates import get_templates

COLUMNS = ("build", "top-1", "top-5", "images/s", "p50 ms")


def report(
    builds: Annotated[list[str], typer.Argument(help="Exported/built folders (or models to export first) to compare.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Labelled data (as for eval).")],
    split: Annotated[str, typer.Option("--split")] = "test",
    samples: Annotated[int | None, typer.Option("--samples")] = None,
    templates: Annotated[str, typer.Option("--templates")] = "default",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch for the speed measurement.")] = 8,
    iterations: Annotated[int, typer.Option("--iterations")] = 10,
    plot: Annotated[Path | None, typer.Option("--plot", help="Accuracy vs images/s chart (PNG).")] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the rows as JSON to FILE, or to stdout with '--json -' (instead of the table)."
        ),
    ] = None,
) -> None:
    """Evaluate and benchmark each build; print top-1 vs images/s."""

    data = load_eval_data(dataset, split, samples)
    opts = {"device": "cpu", "threads": None, "warmup": 2, "iterations": iterations}
    rows = accuracy_vs_speed(builds, data, get_templates(templates), batch_size, opts)
    if not output.is_stdout(json_out):
        output.show(_table(rows, f"{dataset}:{split}"))
    if plot:
        draw(rows, plot)
    output.write_json(json_out, rows)


def _table(rows: list[dict], data: str):
    batch = rows[0]["batch"] if rows else "?"
    table = output.table(f"accuracy x speed on {data} (image encoder, batch {batch})", COLUMNS, numeric=COLUMNS[1:])
    for r in rows:
        table.add_row(
            r["build"], f"{r['top1']:.1f}", f"{r['top5']:.1f}", f"{r['images_per_s']:.1f}", f"{r['p50_ms']:.1f}"
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("report")(report)
