"""``clipforge search``: nearest images in an index for texts and/or example images."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge._fspath import display
from clipforge.cli import runtime_options as ro
from clipforge.cli.options import Db, IndexModel
from clipforge.index import Index, SearchFilter
from clipforge.index.relevance import AUTO, parse_min_score


class SortOrder(str, Enum):
    score = "score"
    date = "date"


def search(
    text: Annotated[list[str] | None, typer.Argument(help="Query text(s); their embeddings are averaged.")] = None,
    db: Db = ...,
    model: IndexModel = None,
    image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="Example image (repeatable).")] = None,
    negative: Annotated[
        list[str] | None, typer.Option("--negative", "-n", help="Text to subtract (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Number of results.")] = 20,
    min_score: Annotated[
        str | None,
        typer.Option(
            "--min-score",
            metavar="SCORE|auto",
            help="Drop results below this cosine; auto: keep only what stands out in this library "
            "(else say 'no match').",
        ),
    ] = None,
    after: Annotated[
        str | None, typer.Option("--after", metavar="DATE", help="Taken on or after DATE (YYYY[-MM[-DD]]).")
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", metavar="DATE", help="Taken on or before DATE (the whole day/month/year).")
    ] = None,
    folder: Annotated[Path | None, typer.Option("--folder", help="Only images under this folder.")] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Camera make/model contains this (case-insensitive).")
    ] = None,
    near: Annotated[
        str | None, typer.Option("--near", metavar="LAT,LON[,KM]", help="Taken within KM km (default 25) of a place.")
    ] = None,
    sort: Annotated[SortOrder, typer.Option("--sort", help="score: best first; date: the best, newest first.")] = (
        SortOrder.score
    ),
    exact: Annotated[
        bool, typer.Option("--exact", help="Compare with every stored vector, not the approximate index (slower).")
    ] = False,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    as_json: ro.AsJson = False,
) -> None:
    """Print the indexed images most similar to the query (path and cosine score), best first; --after/--before,
    --folder, --camera and --near keep only the photos that match (date taken, place, camera: stored by
    'clipforge index'), --sort date shows them newest first."""
    given = {"after": after, "before": before, "folder": folder, "camera": camera, "near": near}
    filters = _filters(given, sort)
    cutoff = parse_min_score(min_score)
    with Index(db, model, device=device, threads=threads) as idx:
        hits = idx.search(
            text=text or None,
            image=image or None,
            negative=negative or None,
            k=k,
            min_score=cutoff,
            filters=filters,
            exact=exact,
        )
        info = idx.metadata([h.id for h in hits]) if filters else None
        reason = idx.relevance().reason() if cutoff == AUTO and not (hits or image) else None
    _print(hits, info, as_json, reason)
    if not hits and not as_json and reason is None:
        output.say("no results" + (f" with score >= {cutoff}" if cutoff is not None else ""))


def _filters(given: dict, sort: SortOrder) -> SearchFilter | None:
    """The filter the options ask for: None when none is given and the order is by score."""
    if any(v is not None for v in given.values()):
        return SearchFilter.parse(**given, sort=sort.value)
    return SearchFilter(sort="date") if sort is SortOrder.date else None


def _print(hits: list, info: dict | None, as_json: bool, reason: str | None) -> None:
    """JSON or a table; with ``info`` (a filter was given) each hit also says when it was taken. ``reason``:
    why ``--min-score auto`` kept no hit, one line (on stderr, after the empty JSON list)."""
    if as_json:
        rows = [{"id": h.id, "path": h.path, "score": round(h.score, 6), **_taken(h, info)} for h in hits]
        output.print_json(rows)
    if reason is not None:
        output.say(reason)
    if as_json or not hits:
        return
    columns = ("score", "taken", "path") if info is not None else ("score", "path")
    table = output.table("search results", columns, numeric=("score",))
    for h in hits:
        taken = [_taken(h, info)["taken"] or ""] if info is not None else []
        table.add_row(f"{h.score:.4f}", *taken, display(h.path))
    output.show(table)


def _taken(hit, info: dict | None) -> dict:
    """When a hit was taken, for the JSON rows: only when a filter was given (``info``), None when unknown."""
    if info is None:
        return {}
    stored = info.get(hit.id)
    return {"taken": stored.taken if stored else None, "taken_from": stored.taken_from if stored else None}


def register(app: typer.Typer) -> None:
    app.command("search")(search)
