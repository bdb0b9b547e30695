"""``clipforge eval``: zero-shot accuracy (or retrieval recall) of ONNX encoders, with an optional PyTorch
baseline on the same samples and prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge.errors import InputError
from clipforge.specs import ROLES

TASKS = ("zero-shot-image-classification", "zero-shot-retrieval")


def parse_models(values: list[str]):
    """``-m OUT`` (a composite folder) or ``-m image-encoder=PATH -m text-encoder=PATH``."""
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    pairs = {}
    for value in values:
        role, sep, path = value.partition("=")
        if not sep or role not in ROLES:
            raise InputError(f"-m {value!r}: expected ROLE=PATH with ROLE one of {', '.join(ROLES)}, "
                             "or a single exported folder")
        pairs[role] = path
    return pairs


def parse_columns(values: list[str]) -> dict[str, str]:
    valid = ("input_column", "label_column", "caption_column")
    out = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or key not in valid:
            raise InputError(f"--column {value!r}: expected KEY=NAME with KEY one of {', '.join(valid)}")
        out[key] = name
    return out


def eval_command(
    models: Annotated[list[str], typer.Option("--model", "-m", help="OUT folder, or ROLE=PATH (repeat).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Folder, parquet/arrow/csv/jsonl file, or hub id.")],
    task: Annotated[str, typer.Option("--task", help=" | ".join(TASKS))] = TASKS[0],
    split: Annotated[str, typer.Option("--split")] = "test",
    samples: Annotated[int | None, typer.Option("--samples", help="Random subset size (fixed seed).")] = None,
    column: Annotated[list[str] | None, typer.Option("--column", help="input_column=… label_column=…")] = None,
    class_names: Annotated[Path | None, typer.Option("--class-names", help="File, one class per line.")] = None,
    templates: Annotated[str, typer.Option("--templates", help="default|cifar10|cifar100|imagenet|imagenet-7|FILE")] = "default",
    model_id: Annotated[str | None, typer.Option("--model-id", help="Checkpoint for --baseline torch.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="'torch': also run the PyTorch model.")] = None,
    max_drop: Annotated[float | None, typer.Option("--max-drop", help="Fail if ONNX loses more than PP.")] = None,
    device: Annotated[str, typer.Option("--device", "-d")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a markdown table.")] = None,
) -> None:
    """Evaluate zero-shot classification (top-1/top-5/per-class) or retrieval (recall@k)."""
    from clipforge.evaluation.run import EvalRequest, run_eval

    if task not in TASKS:
        raise InputError(f"--task {task!r} is not supported; choose one of {', '.join(TASKS)}")
    if baseline not in (None, "torch"):
        raise InputError(f"--baseline {baseline!r} is not supported; the only baseline is 'torch'")
    names = class_names.read_text().splitlines() if class_names else None
    request = EvalRequest(parse_models(models), dataset, task, split, samples, parse_columns(column or []), names,
                          templates, model_id, baseline, device, batch_size)
    result = run_eval(request)
    _outputs(result, json_out, report)
    _check_drop(result, max_drop)


def _outputs(result: dict, json_out: Path | None, report: Path | None) -> None:
    from clipforge.evaluation import reports

    if result["task"] == TASKS[0]:
        reports.print_table(result)
    else:
        import json

        print(json.dumps({k: result["onnx"][k] for k in ("image_to_text", "text_to_image", "pairs")}, indent=2))
    if json_out:
        reports.write_json(json_out, result)
    if report and result["task"] == TASKS[0]:
        reports.write_markdown(report, result)


def _check_drop(result: dict, max_drop: float | None) -> None:
    if max_drop is None:
        return
    if "baseline" not in result:
        raise InputError("--max-drop needs --baseline torch (and --model-id) to compare against")
    drop = result["baseline"]["top1"] - result["onnx"]["top1"]
    if drop > max_drop:
        from rich.console import Console

        Console(stderr=True).print(f"[red]ONNX top-1 is {drop:.2f} pp below PyTorch (allowed {max_drop})[/]")
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
