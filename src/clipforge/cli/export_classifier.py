"""``clipforge export-classifier``: one ONNX file, image -> scores over a fixed label set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipforge.cli import options as o
from clipforge.cli.runtime_options import split_labels
from clipforge.errors import InputError
from clipforge.pipeline.classifier import export_classifier as run
from clipforge.zeroshot.templates import get_templates


def export_classifier(
    model: o.ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="clf.onnx")],
    labels: Annotated[
        list[str] | None, typer.Option("--labels", "-l", help="Labels (repeat or comma-separated).")
    ] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels-file", help="One label per line.")] = None,
    template: Annotated[str | None, typer.Option("--template", "-t")] = None,
    templates: Annotated[str | None, typer.Option("--templates", help="Named ensemble or file.")] = None,
    with_preprocessing: Annotated[
        bool,
        typer.Option(
            "--with-preprocessing", help="Input encoded PNG/JPEG bytes, decoded and pre-processed in the graph."
        ),
    ] = False,
    force: o.Force = False,
) -> None:
    """Bake a label set into one graph: pixel_values (or image bytes) -> scores, label_index (metadata: labels,
    templates, mean/std, size)."""

    if labels_file is not None:
        if not labels_file.is_file():
            raise InputError(f"labels file {labels_file} does not exist")
        label_list = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
    else:
        label_list = split_labels(labels or [])
    if template and templates:
        raise InputError("pass --template or --templates, not both")
    chosen = [template] if template else get_templates(templates or "default")
    report = run(model, output, label_list, chosen, force=force, with_preprocessing=with_preprocessing)
    gap = report.get("max_abs_diff_vs_runtime_preprocessing")
    extra = f" ({gap:.1e} vs the runtime's own pre-processing of the same PNGs)" if gap is not None else ""
    Console(stderr=True).print(
        f"[green]wrote[/] {output}: {report['labels']} labels, {report['templates']} "
        f"template(s); max score diff vs runtime {report['max_abs_diff']:.1e}{extra}"
    )


def register(app: typer.Typer) -> None:
    app.command("export-classifier")(export_classifier)
