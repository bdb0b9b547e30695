"""``clipforge export-pipeline``: PREFIX_img.onnx (+ PREFIX_img_hwc.onnx) and PREFIX_txt.onnx with image
pre-processing and the tokenizer inside the graphs (onnxruntime + onnxruntime-extensions at inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipforge.cli import options as o
from clipforge.pipeline import export_pipeline as run
from clipforge.pipeline.export_graphs import record_path


def export_pipeline(
    model: Annotated[
        str,
        typer.Argument(help="Hub id, checkpoint folder, or folder written by 'clipforge export' or 'clipforge build'."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Prefix: PREFIX_img.onnx, PREFIX_img_hwc.onnx, PREFIX_txt.onnx, PREFIX_pipeline.json.",
        ),
    ],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Override the preset of the checkpoint's family (multimodal_clip, multimodal_siglip, "
            "multimodal_openclip, multimodal_metaclip2).",
        ),
    ] = None,
    template: Annotated[str | None, typer.Option("--template", hidden=True, help="Deprecated: --preset.")] = None,
    force: o.Force = False,
    quiet: o.Quiet = False,
) -> None:
    """Export embedding pipelines: encoded image -> embedding [1, D], strings [N] -> embedding [N, D]."""

    if template is not None:
        Console(stderr=True).print("[yellow]--template is deprecated for pipelines; use --preset[/]")
    result = run(model, output, preset or template, force=force, show_progress=not quiet)
    console = Console(stderr=True)

    console.print(
        f"[green]wrote[/] {', '.join(str(p) for p in result.paths.values())} "
        f"(preset {result.config.preset}); validation and sha256 in {record_path(output)}"
    )
    report = result.validation
    if "text" in report:
        t = report["text"]
        reference = "the runtime's (= open_clip's)" if result.config.family == "openclip" else "HF's"
        console.print(
            f"  text: token ids identical to {reference}: {t['ids_identical']}; min cosine vs runtime "
            f"{t['min_cosine']:.6f}"
        )
    if "image" in report:
        i = report["image"]
        console.print(
            f"  image: min cosine vs runtime {i['min_cosine']:.6f}; pre-processing max diff "
            f"{i['png_levels']:.1f} uint8 level(s) on PNG, {i['jpeg_levels']:.1f} on JPEG (decoder differs)"
        )


def register(app: typer.Typer) -> None:
    app.command("export-pipeline")(export_pipeline)
