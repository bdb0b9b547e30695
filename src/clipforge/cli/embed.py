"""``clipforge embed``: image or text embeddings to .npy (+ names file) or parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from clipforge._io import atomic_file
from clipforge.cli import engine_options as eo
from clipforge.cli import runtime_options as ro
from clipforge.cli.classify import _exit_on_failures
from clipforge.errors import InputError
from clipforge.runtime.batches import iter_image_batches


def embed(
    inputs: Annotated[list[str], typer.Argument(help="Image files/folders, or texts with --text.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.npy (names in out.names.txt) or out.parquet")],
    text: Annotated[bool, typer.Option("--text", help="INPUTS are texts, not images.")] = False,
    model: ro.Model = ro.DEFAULT_MODEL, batch_size: ro.BatchSize = 32, device: ro.Device = "cpu",
    threads: ro.Threads = None,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise.")] = True,
    engine: eo.Engine = eo.EngineName.local, address: eo.Address = None, workers: eo.Workers = None,
    cpus_per_worker: eo.CpusPerWorker = 1,
) -> None:
    """Embed images (or texts with --text) into the model's shared space."""
    if output.suffix not in (".npy", ".parquet"):
        raise InputError(f"output {output} must end in .npy or .parquet")
    if engine == eo.EngineName.ray:
        options = eo.ray_options(address, workers, cpus_per_worker, batch_size)
        return _embed_ray(inputs, output, text, model, device, threads, normalize, options)
    eo.check_local(engine, address, workers, cpus_per_worker)
    zs = ro.load_model(model, device, threads)
    failures, names, chunks = [], [], []
    if text:
        names, chunks = list(inputs), [zs.embed_texts(inputs, normalize=normalize)]
    else:
        paths = ro.expand_images([Path(p) for p in inputs])
        for batch in iter_image_batches(paths, batch_size, failures, show=len(paths) > 1):
            names += [str(n) for n in batch.names]
            chunks.append(zs.embed_images(batch.images, batch_size, normalize=normalize))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, zs.manifest.embed_dim), np.float32)
    _write(output, names, vectors)
    Console(stderr=True).print(f"wrote {len(names)} embedding(s) of dim {vectors.shape[1]} to {output}")
    _exit_on_failures(failures, len(names) + len(failures))


def _embed_ray(inputs, output: Path, text: bool, model: str, device: str, threads, normalize: bool,
               options) -> None:
    """``--engine ray``: images only, to parquet (path, sha256, embedding), on CPU workers."""
    from clipforge.distributed.ray import run
    from clipforge.distributed.records import ParquetWriter

    wrong = [what for what, bad in (("--text", text), (f"--device {device}", device != "cpu"),
                                    ("--threads (use --cpus-per-worker)", threads is not None),
                                    (f"{output.suffix} output", output.suffix != ".parquet")) if bad]
    if wrong:
        raise InputError(f"--engine ray embeds image files into a .parquet file on CPU workers; "
                         f"{', '.join(wrong)} is not supported with it")
    paths = ro.expand_images([Path(p) for p in inputs])
    zs = ro.load_model(model, "cpu", 1)  # resolves (exports once) and checks the model before any worker starts
    with ParquetWriter(output, zs.manifest.embed_dim) as writer:
        summary = run(paths, zs.folder, options, consume=writer.write, normalize=normalize, show=len(paths) > 1)
    Console(stderr=True).print(
        f"wrote {writer.count} embedding(s) of dim {zs.manifest.embed_dim} to {output} "
        f"({summary.images_per_second:.1f} img/s on {summary.workers} Ray worker(s) x {summary.cpus_per_worker} CPU)")
    _exit_on_failures(summary.failures, len(paths))


def _write(output: Path, names: list[str], vectors: np.ndarray) -> None:
    if output.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"name": names, "embedding": list(vectors.astype(np.float32))})
        with atomic_file(output) as tmp:
            pq.write_table(table, tmp)
        return
    with atomic_file(output) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors.astype(np.float32))
    with atomic_file(output.with_suffix(".names.txt")) as tmp:
        tmp.write_text("".join(n.replace("\n", " ") + "\n" for n in names))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
