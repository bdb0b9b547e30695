"""``clipforge build``: export -> optimise -> quantise -> compile, one encoder (-c CFG) or both (--task)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge.builder import build_composite
from clipforge.builder.build_config import TASK_ROLES, BuildConfig
from clipforge.cli import options as o
from clipforge.output import print_json  # `output` is the OUTPUT folder inside build()


def build(
    model: Annotated[str, typer.Option("--model", "-m", help="Checkpoint folder, hub id, open_clip source or export.")],
    output: o.Output,
    config_path: Annotated[Path | None, typer.Option("--config", "-c", help="Build config JSON.")] = None,
    task: Annotated[str | None, typer.Option("--task", help=f"One of: {', '.join(TASK_ROLES)}.")] = None,
    quantize: Annotated[
        str | None, typer.Option("--quantize", help="none|int8-dynamic|int8-static|fp16|bf16|auto")
    ] = None,
    calibration_data: Annotated[
        Path | None, typer.Option("--calibration-data", help="Image folder or parquet.")
    ] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option("--max-accuracy-drop", help="pp, for auto.")] = None,
    ep: Annotated[str | None, typer.Option("--ep", help="cpu|cuda|openvino|qnn|dml|...")] = None,
    static: Annotated[bool, typer.Option("--static", help="Fixed shapes for NPU-style targets.")] = False,
    text_attention_mask: o.TextAttentionMask = False,
    keep_case: o.KeepCase = False,
    revision: o.Revision = None,
    force: o.Force = False,
    quiet: o.Quiet = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print build.json's report on stdout instead of the summary table.")
    ] = False,
) -> None:
    """Build fast, validated encoders; writes model.onnx (or both encoders), build.json and manifest.json."""

    cfg = (
        BuildConfig.load(config_path) if config_path else BuildConfig.for_task(task or "zero-shot-image-classification")
    )
    result = build_composite(
        model,
        output,
        cfg,
        calibration_data=calibration_data,
        revision=revision,
        force=force,
        show_progress=not quiet,
        quantize=quantize,
        ep=ep,
        max_accuracy_drop=max_accuracy_drop,
        static=static or None,
        text_attention_mask=text_attention_mask or None,
        keep_case=keep_case or None,
    )
    if as_json:
        print_json({"path": str(result.path), "skipped": result.skipped, **result.manifest.build})
        return
    _summary(result)


STAGES = ("encoder", "stage", "s", "MB", "mean cos", "min cos", "top-1 agree")  # cosines, agreement: vs fp32


def _summary(result) -> None:
    """On stderr, like the progress (stdout stays free for scripts)."""
    if result.skipped:
        output.say(f"up to date: {result.path} (same inputs and config; nothing rebuilt)", style="green")
        return
    table = output.table(f"build {result.path}", STAGES, numeric=STAGES[2:])
    for encoder, info in result.report["roles"].items():
        stages = info["stages"]
        for i, s in enumerate(stages):
            p = s["parity"]
            table.add_row(
                encoder if i == 0 else "",
                s["stage"] + ("" if s.get("kept", True) else " (dropped)"),
                f"{s['seconds']:.1f}",
                f"{s['bytes'] / 1e6:.1f}",
                f"{p['mean_cosine']:.5f}",
                f"{p['min_cosine']:.5f}",
                f"{p['top1_agreement']:.3f}",
                end_section=i == len(stages) - 1,
            )
    output.show(table, stderr=True)
    if "auto" in result.report:
        auto = result.report["auto"]
        on = {r: "{backend}/{precision}".format(**rt) for r, rt in auto.get("runtime", {}).items()}
        output.say(
            f"auto chose image={auto['chosen']['image-encoder']} on {on.get('image-encoder', '-')} "
            f"text={auto['chosen']['text-encoder']} on {on.get('text-encoder', '-')} "
            f"(fp32 top-1 {auto['fp32_top1']:.1f}%, {len(auto['candidates'])} candidates tried)"
        )


def register(app: typer.Typer) -> None:
    app.command("build")(build)
