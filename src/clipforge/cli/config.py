"""``clipforge config``: write one build config per encoder of a task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipforge._io import atomic_file
from clipforge.builder.build_config import TASK_ROLES, BuildConfig


def config(
    model: Annotated[str, typer.Option("--model", "-m", help="Hub id or checkpoint folder (recorded only).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="clip.json -> clip_<encoder>.json per encoder.")],
    task: Annotated[str, typer.Option("--task", help=f"One of: {', '.join(TASK_ROLES)}.")] = (
        "zero-shot-image-classification"
    ),
    quantize: Annotated[str, typer.Option("--quantize", help="none|int8-dynamic|int8-static|fp16|auto")] = "none",
    static: Annotated[bool, typer.Option("--static", help="Fixed shapes (batch 1; text 77 CLIP / 64 SigLIP).")] = False,
    ep: Annotated[str, typer.Option("--ep", help="Execution provider.")] = "cpu",
) -> None:
    """Write build configs (one per encoder for composite tasks)."""
    base = BuildConfig.for_task(task)
    roles = base.roles
    paths = []
    for encoder in roles:
        cfg = BuildConfig.for_task(task, encoder)
        cfg.quantize.mode, cfg.export.static, cfg.compile.ep = quantize, static, ep
        cfg.validate()
        path = output if len(roles) == 1 else output.with_name(f"{output.stem}_{encoder}{output.suffix or '.json'}")
        with atomic_file(path) as tmp:
            tmp.write_text(cfg.to_json())
        paths.append(path)
    Console(stderr=True).print(f"wrote {', '.join(map(str, paths))} for {model}")


def register(app: typer.Typer) -> None:
    app.command("config")(config)
