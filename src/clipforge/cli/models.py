"""``clipforge models``: registered families and well-known checkpoints."""

from __future__ import annotations

import typer

from clipforge import output
from clipforge.cli.runtime_options import AsJson
from clipforge.registry import list_models

COLUMNS = ("family", "checkpoint", "text", "params", "dim", "image")
LANGUAGES = {"en": "en", "multilingual": "multi"}


def models(as_json: AsJson = False) -> None:
    """List supported model families and well-known checkpoints (text languages, params in millions, embedding
    dim, image px); family openclip is open_clip's format, the others transformers'."""
    rows = list_models()
    if as_json:
        output.print_json(rows)
        return
    table = output.table(
        "known checkpoints (text: en or multilingual; params in millions, embedding dim, image size in px; "
        "family openclip: open_clip format, others: transformers format)",
        COLUMNS,
        numeric=COLUMNS[3:],
    )
    for r in rows:
        params = "-" if r["params_m"] is None else str(r["params_m"])
        table.add_row(
            r["family"], r["name"], LANGUAGES[r["languages"]], params, str(r["embed_dim"]), str(r["image_size"])
        )
    output.show(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
