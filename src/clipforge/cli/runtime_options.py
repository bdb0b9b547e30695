"""Options shared by the commands that run a model (classify, embed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge.errors import InputError
from clipforge.runtime.images import IMAGE_SUFFIXES

DEFAULT_MODEL = "openai/clip-vit-base-patch32"

Model = Annotated[
    str, typer.Option("--model", "-m", help="Exported/built folder, checkpoint folder, hub id or open_clip source.")
]
Device = Annotated[str, typer.Option("--device", "-d", help="cpu, cuda, dml, openvino, qnn, ...")]
Threads = Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Images per encoder run.")]
Backend = Annotated[str, typer.Option("--backend", help="onnxruntime, openvino, or auto (what the build chose).")]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="fp32 or bf16 (OpenVINO: float parts in bf16; CPUs with AVX512-BF16/AMX); default: what the build chose.",
    ),
]
MaxPatches = Annotated[
    int | None,
    typer.Option(
        "--max-patches",
        help="SigLIP 2 NaFlex models: patches per image (more: slower, finer); default: the model's budget.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def expand_images(inputs: list[Path]) -> list[Path]:
    """Files as given; folders expand to the image files inside them (recursively, sorted)."""
    paths = []
    for p in inputs:
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(p)
    if not paths:
        raise InputError(f"no images found in {', '.join(map(str, inputs))}; pass image files or folders")
    return paths


def split_labels(values: list[str]) -> list[str]:
    """``--labels`` may be repeated and each value may hold several comma-separated labels."""
    return [part.strip() for v in values for part in v.split(",") if part.strip() or not v.strip()]
