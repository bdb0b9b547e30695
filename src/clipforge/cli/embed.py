"""``clipforge embed``: image or text embeddings to .npy (+ names file) or parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from clipforge._io import atomic_file
from clipforge.cli import engine_options as eo, runtime_options as ro
from clipforge.cli.classify import exit_on_failures
from clipforge.distributed.ray import embed_to_parquet
from clipforge.errors import InputError
from clipforge.index import ModelRecord
from clipforge.index.embeddings import model_metadata
from clipforge.models import model_folder, open_model
from clipforge.output import say
from clipforge.runtime.backends import resolve
from clipforge.runtime.batches import ImageFailure, iter_image_batches
from clipforge.specs import Manifest


def embed(
    inputs: Annotated[list[str], typer.Argument(help="Image files/folders, or texts with --text.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.npy (names in out.names.txt) or out.parquet")],
    text: Annotated[bool, typer.Option("--text", help="INPUTS are texts, not images.")] = False,
    model: ro.Model = ro.DEFAULT_MODEL,
    batch_size: ro.BatchSize = 32,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    backend: ro.Backend = "auto",
    precision: ro.Precision = None,
    max_patches: ro.MaxPatches = None,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise.")] = True,
    engine: eo.Engine = eo.EngineName.local,
    address: eo.Address = None,
    workers: eo.Workers = None,
    cpus_per_worker: eo.CpusPerWorker = 1,
) -> None:
    """Embed images (or texts with --text) into the model's shared space."""
    if output.suffix not in (".npy", ".parquet"):
        raise InputError(f"output {output} must end in .npy or .parquet")
    if engine == eo.EngineName.ray:
        if max_patches is not None:
            raise InputError("--max-patches runs with the local engine; leave --engine ray out (or --max-patches)")
        options = eo.ray_options(address, workers, cpus_per_worker, batch_size)
        return _embed_ray(inputs, output, text, model, device, threads, normalize, options, backend, precision)
    eo.check_local(engine, address, workers, cpus_per_worker)
    zs = open_model(
        model, device=device, threads=threads, backend=backend, lazy=True, precision=precision, max_patches=max_patches
    )  # one encoder is used
    failures, names, chunks = [], [], []
    if text:
        names, chunks = list(inputs), [zs.embed_texts(inputs, normalize=normalize)]
    else:
        paths = ro.expand_images([Path(p) for p in inputs])
        for batch in iter_image_batches(paths, batch_size, failures, show=len(paths) > 1):
            names += [str(n) for n in batch.names]
            chunks.append(zs.embed_images(batch.images, batch_size, normalize=normalize))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, zs.manifest.embed_dim), np.float32)
    _write(output, names, vectors, "text" if text else "path", model_metadata(ModelRecord.of(zs)))
    say(f"wrote {len(names)} embedding(s) of dim {vectors.shape[1]} to {output}")
    exit_on_failures(failures, len(names) + len(failures), inputs)


def _embed_ray(
    inputs,
    output: Path,
    text: bool,
    model: str,
    device: str,
    threads,
    normalize: bool,
    options,
    backend: str,
    precision: str | None,
) -> None:
    """``--engine ray``: images only, to parquet (path, sha256, embedding), on CPU workers."""

    eo.check_ray(text=text, device=device != "cpu", threads=threads is not None)
    resolve(backend, None, precision)  # on the driver: a missing openvino or bf16 is one line, not a worker failure
    if output.suffix != ".parquet":
        raise InputError(
            f"--engine ray writes parquet (path, sha256, embedding), not {output.suffix}; "
            f"name the output {output.with_suffix('.parquet').name}"
        )
    paths = ro.expand_images([Path(p) for p in inputs])
    folder = model_folder(model)  # exports once if needed, on the driver; workers load the folder
    Manifest.load(folder)  # a broken folder is reported before any worker starts
    stats, written = embed_to_parquet(
        paths, folder, output, options, normalize, show=len(paths) > 1, backend=backend, precision=precision
    )
    say(
        f"wrote {written} embedding(s) to {output} in {stats.seconds:.1f} s on {stats.workers} Ray worker(s) "
        f"x {stats.cpus_per_worker} CPU"
    )
    exit_on_failures([ImageFailure(p, r) for p, r in stats.unreadable], len(paths), inputs)


def _write(output: Path, names: list[str], vectors: np.ndarray, column: str, metadata: dict) -> None:
    """``.parquet``: ``column`` (``path`` for images, as the Ray engine writes and ``clipforge index
    --embeddings`` reads; ``text`` for texts) and ``embedding`` (fixed-size list of float32), the model
    record in the schema metadata; ``.npy``: the vectors, names in ``.names.txt``."""
    if output.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        dim = vectors.shape[1]
        embedding = pa.FixedSizeListArray.from_arrays(vectors.astype(np.float32).reshape(-1), dim)
        table = pa.table({column: pa.array(names, pa.string()), "embedding": embedding}).replace_schema_metadata(
            metadata
        )
        with atomic_file(output) as tmp:
            pq.write_table(table, tmp)
        return
    with atomic_file(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors.astype(np.float32))
    with atomic_file(output.with_suffix(".names.txt")) as tmp:
        tmp.write_text("".join(n.replace("\n", " ") + "\n" for n in names))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
