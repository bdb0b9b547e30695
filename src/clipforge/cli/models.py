"""``clipforge models``: registered families and well-known checkpoints."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from clipforge.registry import list_models


def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List supported model families and well-known checkpoints."""
    rows = list_models()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="clipforge model families and known checkpoints")
    for column in ("family", "checkpoint", "params (M)", "embed dim", "image size"):
        table.add_column(column, justify="right" if column[0] in "pei" else "left")
    for r in rows:
        table.add_row(r["family"], r["name"], str(r["params_m"]), str(r["embed_dim"]), str(r["image_size"]))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
