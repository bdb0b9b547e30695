"""``clipforge search``: nearest images in an index for texts and/or example images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge._fspath import display
from clipforge.cli import runtime_options as ro
from clipforge.cli.index import Db, IndexModel
from clipforge.index import Index


def search(
    text: Annotated[list[str] | None, typer.Argument(help="Query text(s); their embeddings are averaged.")] = None,
    db: Db = ...,
    model: IndexModel = None,
    image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="Example image (repeatable).")] = None,
    negative: Annotated[
        list[str] | None, typer.Option("--negative", "-n", help="Text to subtract (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Number of results.")] = 20,
    min_score: Annotated[float | None, typer.Option("--min-score", help="Drop results below this cosine.")] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Compare with every stored vector, not the approximate index (slower).")
    ] = False,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    as_json: ro.AsJson = False,
) -> None:
    """Print the indexed images most similar to the query (path and cosine score), best first."""
    with Index(db, model, device=device, threads=threads) as idx:
        hits = idx.search(
            text=text or None, image=image or None, negative=negative or None, k=k, min_score=min_score, exact=exact
        )
    if as_json:
        output.print_json([{"id": h.id, "path": h.path, "score": round(h.score, 6)} for h in hits])
        return
    if not hits:
        output.say("no results" + (f" with score >= {min_score}" if min_score is not None else ""))
        return
    table = output.table("search results", ("score", "path"), numeric=("score",))
    for h in hits:
        table.add_row(f"{h.score:.4f}", display(h.path))
    output.show(table)


def register(app: typer.Typer) -> None:
    app.command("search")(search)
