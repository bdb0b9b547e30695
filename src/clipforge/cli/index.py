"""``clipforge index``: embed image folders into a database (SQLite file or postgresql:// URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge._dblocation import redact
from clipforge._fspath import display
from clipforge.cli import engine_options as eo, runtime_options as ro
from clipforge.cli.options import Db, IndexModel, Quiet
from clipforge.distributed.ray import index_into
from clipforge.errors import InputError
from clipforge.index import Index


def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Image files or folders (walked recursively).")] = None,
    db: Db = ...,
    model: IndexModel = None,
    batch_size: ro.BatchSize = 32,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    max_patches: ro.MaxPatches = None,
    decode_threads: Annotated[int | None, typer.Option("--decode-threads", help="Image decoding threads.")] = None,
    exact_decode: Annotated[
        bool,
        typer.Option(
            "--exact-decode", help="Decode JPEGs fully (bit-identical to HF pre-processing; slower on big photos)."
        ),
    ] = False,
    quiet: Quiet = False,
    as_json: ro.AsJson = False,
    engine: eo.Engine = eo.EngineName.local,
    address: eo.Address = None,
    workers: eo.Workers = None,
    cpus_per_worker: eo.CpusPerWorker = 1,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            help="Import this parquet of precomputed embeddings (clipforge embed's output) instead of PATHS; "
            "image files are not read.",
        ),
    ] = None,
) -> None:
    """Embed new and changed images under PATHS, drop rows of deleted files; unreadable files are listed.
    With --embeddings, import precomputed embeddings instead. With a model other than the one the database
    records, switch it: every indexed image (and those under PATHS, which may be left out) is embedded into a
    new vector set while searches keep answering with the old model, then the new set replaces the old one in
    one transaction (rerun the same command after an interruption: it resumes)."""
    if embeddings is not None:
        return _import(embeddings, paths, db, model, engine, quiet, as_json)
    show = not (quiet or as_json)
    if engine == eo.EngineName.ray:
        if max_patches is not None:
            raise InputError("--max-patches runs with the local engine; leave --engine ray out (or --max-patches)")
        if not paths:
            raise InputError(NO_PATHS)
        eo.check_ray(device=device != "cpu", threads=threads is not None, decode_threads=decode_threads is not None)
        options = eo.ray_options(address, workers, cpus_per_worker, batch_size)
        summary, total = index_into(db, model, paths, options, exact_decode, show=show)
    else:
        eo.check_local(engine, address, workers, cpus_per_worker)
        index_options = {"device": device, "threads": threads, "max_patches": max_patches}
        add_options = {"exact_decode": exact_decode, "batch_size": batch_size, "threads": decode_threads}
        summary, total = _index_local(db, model, paths, index_options, add_options, show)
    _report(summary, total, db, as_json)


NO_PATHS = "clipforge index needs image files or folders (PATHS), or --embeddings FILE.parquet"


def _index_local(db: str, model, paths, index_options: dict, add_options: dict, show: bool):
    """(summary, rows) of an index run in this process; a model other than the recorded one switches the index
    (PATHS may then be left out: every indexed image is embedded again)."""
    with Index(db, model, switch=True, **index_options) as idx:
        if not paths and not idx.switching:
            raise InputError(NO_PATHS)
        if idx.switching and show:
            output.say(
                f"switching {redact(db)} to {idx.model_record.describe()}: embedding its images into a new "
                "vector set; searches answer with the old model until it is complete"
            )
        return idx.add(paths or [], quiet=not show, **add_options), idx.count()


def _import(embeddings: Path, paths, db: str, model, engine, quiet: bool, as_json: bool) -> None:
    """``--embeddings``: one local reader into the database (the work is the database's writes, not the
    embedding, so a Ray engine would add nothing but its start-up)."""
    if paths:
        raise InputError("pass either PATHS or --embeddings, not both")
    if engine != eo.EngineName.local:
        raise InputError("--embeddings imports with the local engine only (no images are read); leave --engine out")
    with Index(db, model) as idx:
        summary = idx.add_embeddings(embeddings, quiet=quiet or as_json)
        total = idx.count()
    _report(summary, total, db, as_json)


def _report(summary, total: int, db: str, as_json: bool) -> None:
    if as_json:
        output.print_json({**summary.to_dict(), "images": total})
        return
    for path, reason in summary.unreadable:
        output.say(f"  unreadable {display(path)}: {reason}")
    if summary.switched:
        output.say(f"switched models: {summary.switched}")
    output.say(
        f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, unchanged "
        f"{summary.unchanged}, unreadable {len(summary.unreadable)} in {summary.seconds:.1f} s; "
        f"{total} image(s) in {redact(db)}"
    )


def register(app: typer.Typer) -> None:
    app.command("index")(index)
