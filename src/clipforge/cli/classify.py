"""``clipforge classify``: zero-shot labels for images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge.cli import runtime_options as ro
from clipforge.models import open_model
from clipforge.runtime.batches import ImageFailure, iter_image_batches
from clipforge.runtime.labels import DEFAULT_TEMPLATE

COLUMNS = ("image", "label", "score")


def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    labels: Annotated[list[str], typer.Option("--labels", "-l", help="Labels (repeat, or comma-separated).")],
    model: ro.Model = ro.DEFAULT_MODEL,
    template: Annotated[str, typer.Option("--template", "-t", help="Prompt template with {}.")] = DEFAULT_TEMPLATE,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Labels to show per image.")] = 5,
    batch_size: ro.BatchSize = 32,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    as_json: ro.AsJson = False,
    backend: ro.Backend = "auto",
    precision: ro.Precision = None,
    max_patches: ro.MaxPatches = None,
) -> None:
    """Rank LABELS for each image by cosine similarity of their embeddings."""
    zs = open_model(
        model, device=device, threads=threads, backend=backend, precision=precision, max_patches=max_patches
    )
    names, label_list = ro.expand_images(images), ro.split_labels(labels)
    zs.label_embeddings(label_list, template)  # validates labels and template before any image work
    results, failures = {}, []
    for batch in iter_image_batches(names, batch_size, failures, show=not as_json and len(names) > 1):
        predictions = zs.classify(batch.images, label_list, template=template, top_k=top_k)
        results.update(zip(batch.names, predictions))
    _print(results, as_json)
    exit_on_failures(failures, len(names), images)


def _print(results: dict, as_json: bool) -> None:
    if as_json:
        output.print_json([{"image": str(k), "predictions": v} for k, v in results.items()])
        return
    if not results:
        return  # said by exit_on_failures: every image was unreadable
    table = output.table("zero-shot classification", COLUMNS, numeric=("score",))
    for name, preds in results.items():
        for i, p in enumerate(preds):
            table.add_row(str(name) if i == 0 else "", p["label"], f"{p['score']:.4f}", end_section=i == len(preds) - 1)
    output.show(table)


def exit_on_failures(failures: list[ImageFailure], total: int, inputs: list | None = None) -> None:
    """List the unreadable images and exit 1; when none was readable, say so first in one line."""
    if not failures:
        return
    if len(failures) < total or not inputs:
        output.say(f"{len(failures)} of {total} image(s) could not be read and were skipped:", style="red")
    else:
        output.say(f"no readable images in {', '.join(map(str, inputs))} (all {total} unreadable):", style="red")
    for f in failures:
        output.say(f"  {f.name}: {f.reason}")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
