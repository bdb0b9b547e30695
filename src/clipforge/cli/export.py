"""``clipforge export``: checkpoint -> validated image-encoder + text-encoder ONNX folder."""

from __future__ import annotations

import typer
from rich.console import Console

from clipforge.cli import options as o
from clipforge.export import ExportOptions, export_model


def export(
    model: o.ModelArg,
    output: o.Output,
    opset: o.Opset = 17,
    static: o.Static = False,
    batch_size: o.BatchSize = 1,
    sequence_length: o.SequenceLength = None,
    image_size: o.ImageSize = None,
    text_attention_mask: o.TextAttentionMask = False,
    keep_case: o.KeepCase = False,
    max_patches: o.ExportMaxPatches = None,
    revision: o.Revision = None,
    force: o.Force = False,
    quiet: o.Quiet = False,
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Compare with PyTorch after export."),
    atol: float = typer.Option(1e-4, "--atol", help="Max abs difference allowed by validation."),
    pretrained: str = typer.Option(
        None,
        "--pretrained",
        help="open_clip weights file for MODEL = an open_clip architecture name (same as MODEL 'ARCH:FILE').",
    ),
) -> None:
    """Export a CLIP, SigLIP or open_clip checkpoint to OUT/image-encoder, OUT/text-encoder and OUT/manifest.json."""

    if pretrained:
        model = f"{model}:{pretrained}"
    opts = ExportOptions(
        opset=opset,
        static=static,
        batch_size=batch_size,
        sequence_length=sequence_length,
        image_size=image_size,
        validate=validate,
        atol=atol,
        text_attention_mask=text_attention_mask,
        keep_case=keep_case,
        max_patches=max_patches,
    )
    result = export_model(model, output, opts, revision=revision, force=force, show_progress=not quiet)
    _summary(result)


def _summary(result) -> None:
    console = Console(stderr=True)
    m = result.manifest
    console.print(
        f"[green]exported[/] {m.family} ({m.embed_dim}-d) to {result.path} in {result.seconds.get('total', 0):.1f} s"
    )
    for encoder in ("image-encoder", "text-encoder"):
        if encoder in m.validation:
            v = m.validation[encoder]
            console.print(f"  {encoder}: max abs diff {v['max_abs_diff']:.2e}, min cosine {v['min_cosine']:.6f}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
