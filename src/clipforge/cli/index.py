"""``clipforge index``: embed image folders into a database (SQLite file or postgresql:// URL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipforge.cli import runtime_options as ro
from clipforge.cli.options import Quiet

Db = Annotated[str, typer.Option("--db", help="SQLite file (created if missing) or postgresql://user@host/db.")]
IndexModel = Annotated[str | None, typer.Option(
    "--model", "-m", help="Exported/built folder, checkpoint or hub id (default: the model the database records).")]


def index(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (walked recursively).")],
    db: Db, model: IndexModel = None, batch_size: ro.BatchSize = 32, device: ro.Device = "cpu",
    threads: ro.Threads = None,
    decode_threads: Annotated[int | None, typer.Option("--decode-threads", help="Image decoding threads.")] = None,
    exact_decode: Annotated[bool, typer.Option(
        "--exact-decode", help="Decode JPEGs fully (bit-identical to HF pre-processing; slower on big photos).")] = False,
    quiet: Quiet = False, as_json: ro.AsJson = False,
) -> None:
    """Embed new and changed images under PATHS, drop rows of deleted files; unreadable files are listed."""
    from clipforge.index import Index

    with Index(db, model, device=device, threads=threads) as idx:
        summary = idx.add(paths, exact_decode=exact_decode, quiet=quiet or as_json, batch_size=batch_size,
                          threads=decode_threads)
        total = idx.backend.count()
    if as_json:
        print(json.dumps({**summary.to_dict(), "images": total}, indent=2))
        return
    console = Console(stderr=True)
    for path, reason in summary.unreadable:
        console.print(f"  [yellow]unreadable[/] {path}: {reason}", highlight=False)
    console.print(f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, unchanged "
                  f"{summary.unchanged}, unreadable {len(summary.unreadable)} in {summary.seconds:.1f} s; "
                  f"{total} image(s) in {db if '://' not in db else idx.backend.where}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("index")(index)
