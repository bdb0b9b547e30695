"""``clipforge dedup``: groups of near-duplicate images in an index (from the stored vectors)."""

from __future__ import annotations

from typing import Annotated

import typer

from clipforge import output
from clipforge._fspath import display
from clipforge.cli import runtime_options as ro
from clipforge.cli.options import Db, IndexModel
from clipforge.index import Index


def dedup(
    db: Db,
    model: IndexModel = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            "-t",
            help="Cosine at or above which images count as duplicates (groups are joined transitively).",
        ),
    ] = 0.95,
    device: ro.Device = "cpu",
    as_json: ro.AsJson = False,
) -> None:
    """Print groups of near-duplicate images, largest first."""
    with Index(db, model, device=device) as idx:
        groups = idx.duplicates(threshold)
    if as_json:
        output.print_json([[{"id": h.id, "path": h.path, "score": round(h.score, 6)} for h in g] for g in groups])
        return
    for n, group in enumerate(groups, 1):  # plain lines: a path is never broken, whatever the width
        output.say(f"group {n} ({len(group)} images)", stderr=False)
        for h in group:
            output.say(f"  {h.score:.4f}  {display(h.path)}", stderr=False)
    output.say(f"{len(groups)} group(s) of near-duplicates at cosine >= {threshold}")


def register(app: typer.Typer) -> None:
    app.command("dedup")(dedup)
