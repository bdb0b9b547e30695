"""``clipforge dedup``: groups of near-duplicate images in an index (from the stored vectors)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from clipforge.cli import runtime_options as ro
from clipforge.cli.index import Db, IndexModel


def dedup(
    db: Db, model: IndexModel = None,
    threshold: Annotated[float, typer.Option("--threshold", "-t", help="Cosine at or above which images "
                                             "count as duplicates (groups are joined transitively).")] = 0.95,
    device: ro.Device = "cpu", as_json: ro.AsJson = False,
) -> None:
    """Print groups of near-duplicate images, largest first."""
    from clipforge.index import Index

    with Index(db, model, device=device) as idx:
        groups = idx.duplicates(threshold)
    if as_json:
        print(json.dumps([[{"id": h.id, "path": h.path, "score": round(h.score, 6)} for h in g] for g in groups],
                         indent=2))
        return
    console = Console()
    for n, group in enumerate(groups, 1):
        console.print(f"group {n} ({len(group)} images)", highlight=False)
        for h in group:
            console.print(f"  {h.score:.4f}  {h.path}", highlight=False)
    Console(stderr=True).print(f"{len(groups)} group(s) of near-duplicates at cosine >= {threshold}")


def register(app: typer.Typer) -> None:
    app.command("dedup")(dedup)
