"""``clipforge models``: registered families and well-known checkpoints."""

from __future__ import annotations

import typer

from clipforge import output
from clipforge.cli.runtime_options import AsJson
from clipforge.registry import list_models

COLUMNS = ("family", "checkpoint", "params", "dim", "image")


def models(as_json: AsJson = False) -> None:
    """List supported model families and well-known checkpoints (params in millions, embedding dim, image px)."""
    rows = list_models()
    if as_json:
        output.print_json(rows)
        return
    table = output.table(
        "known checkpoints (params in millions, embedding dim, image size in px)", COLUMNS, numeric=COLUMNS[2:]
    )
    for r in rows:
        table.add_row(r["family"], r["name"], str(r["params_m"]), str(r["embed_dim"]), str(r["image_size"]))
    output.show(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
