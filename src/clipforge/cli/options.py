"""Typed option aliases shared by commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# the index commands' (index, search, dedup; here so that search does not import the indexing command)
Db = Annotated[str, typer.Option("--db", help="SQLite file (created if missing) or postgresql://user@host/db.")]
IndexModel = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Exported/built folder, checkpoint or hub id (default: the model the database records)."
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output if it exists.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Output folder.")]
ModelArg = Annotated[
    str, typer.Argument(help="Hub id (e.g. openai/clip-vit-base-patch32), checkpoint folder or open_clip source.")
]
Revision = Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset.")]
Static = Annotated[bool, typer.Option("--static", help="Fixed shapes (NPU-style targets).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Batch size of a --static export.")]
SequenceLength = Annotated[int | None, typer.Option("--sequence-length", help="Text length of a --static export.")]
ExportMaxPatches = Annotated[
    int | None,
    typer.Option(
        "--max-patches",
        help="SigLIP 2 NaFlex: the patch budget per image recorded in the manifest (default: the processor's).",
    ),
]
ImageSize = Annotated[int | None, typer.Option("--image-size", help="Square image size (default: the checkpoint's).")]
TextAttentionMask = Annotated[
    bool,
    typer.Option(
        "--text-attention-mask",
        help="SigLIP: the text graph takes attention_mask and masks the padding, as "
        "transformers 5 does (default: no mask, as SigLIP was trained).",
    ),
]
KeepCase = Annotated[
    bool,
    typer.Option(
        "--keep-case",
        help="SigLIP 2: keep the case of texts, as the HF pipeline does (default: lower-case them, as SigLIP 2 "
        "was trained).",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
