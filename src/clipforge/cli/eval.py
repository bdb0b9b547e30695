"""``clipforge eval``: zero-shot accuracy (or retrieval recall) of ONNX encoders, with an optional PyTorch
baseline on the same samples and prompts. The interface follows the seeds' evaluator (``-m ROLE=PATH``,
``--model-id``, ``--task``, ``--dataset``, ``--split``, ``--samples``, ``--column KEY=NAME``, ``--device``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge.cli import runtime_options as ro
from clipforge.cli.options import Quiet
from clipforge.errors import InputError
from clipforge.evaluation import reports
from clipforge.evaluation.run import EvalRequest, run_eval
from clipforge.specs import ROLES

COLUMN_KEYS = ("input_column", "label_column", "caption_column")


def parse_models(values: list[str]):
    """``-m OUT`` (an exported/built folder) or ``-m image-encoder=PATH -m text-encoder=PATH``."""
    if not values:
        raise InputError("pass the model: -m OUT (an exported folder) or -m image-encoder=PATH -m text-encoder=PATH")
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    pairs = {}
    for value in values:
        encoder, sep, path = value.partition("=")
        if not sep or encoder not in ROLES:
            raise InputError(
                f"-m {value!r}: unknown role {encoder!r}; valid roles: {', '.join(ROLES)} "
                "(as ROLE=PATH), or pass a single exported folder"
            )
        if encoder in pairs:
            raise InputError(f"-m {encoder}=... given twice; pass each role once")
        pairs[encoder] = path
    missing = [r for r in ROLES if r not in pairs]
    if missing:
        raise InputError(f"missing -m {missing[0]}=PATH; zero-shot evaluation needs both roles: {', '.join(ROLES)}")
    return pairs


def parse_columns(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or key not in COLUMN_KEYS or not name:
            raise InputError(f"--column {value!r}: expected KEY=NAME with KEY one of {', '.join(COLUMN_KEYS)}")
        out[key] = name
    return out


def read_class_names(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    if not path.is_file():
        raise InputError(f"--class-names {path} does not exist; pass a text file with one class name per line")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise InputError(f"--class-names {path} is empty; one class name per line, in label order")
    return names


def eval_command(
    models: Annotated[list[str], typer.Option("--model", "-m", help="OUT folder, or ROLE=PATH (repeat).")],
    dataset: Annotated[str, typer.Option("--dataset", help="Folder, parquet/arrow/csv/jsonl file, or hub id.")],
    task: Annotated[
        str, typer.Option("--task", help="zero-shot-image-classification | zero-shot-retrieval")
    ] = "zero-shot-image-classification",
    split: Annotated[str, typer.Option("--split")] = "test",
    samples: Annotated[int | None, typer.Option("--samples", help="Random subset of the split (fixed --seed).")] = None,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="input_column=… label_column=… caption_column=…")
    ] = None,
    class_names: Annotated[Path | None, typer.Option("--class-names", help="File, one class per line.")] = None,
    templates: Annotated[
        str,
        typer.Option(
            "--templates", help="default | cifar10 | cifar100 | imagenet | imagenet-7 | FILE (one template per line)"
        ),
    ] = "default",
    model_id: Annotated[str | None, typer.Option("--model-id", help="The source checkpoint (for --baseline).")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="'torch': also run the PyTorch model.")] = None,
    max_drop: Annotated[
        float | None, typer.Option("--max-drop", help="Exit 3 if ONNX top-1 is more than PP below the baseline.")
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option("--manifest", help="manifest.json of the export, when the encoders are not in its folder."),
    ] = None,
    device: ro.Device = "cpu",
    threads: ro.Threads = None,
    batch_size: ro.BatchSize = 32,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the --samples draw.")] = 0,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the full report as JSON to FILE, or to stdout with '--json -' (instead of the table)."
        ),
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a markdown table.")] = None,
    quiet: Quiet = False,
) -> None:
    """Evaluate zero-shot classification (top-1/top-5/per-class) or retrieval (recall@1/5/10)."""

    if max_drop is not None and baseline is None:
        raise InputError("--max-drop needs --baseline torch (and --model-id) to compare against")
    request = EvalRequest(
        parse_models(models),
        dataset,
        task,
        split,
        samples,
        parse_columns(column or []),
        read_class_names(class_names),
        templates,
        model_id,
        baseline,
        device,
        batch_size,
        seed,
        manifest,
        threads,
        show=not quiet,
    )
    result = run_eval(request)
    if output.is_stdout(json_out):
        reports.warn_unreadable(result)
    else:
        reports.print_report(result)
    reports.write_json(json_out, result)
    if report:
        reports.write_markdown(report, result)
    _check_drop(result, max_drop)


def _check_drop(result: dict, max_drop: float | None) -> None:
    if max_drop is None:
        return
    drop = -result["delta"]["top1"]
    if drop > max_drop:
        output.say(f"ONNX top-1 is {drop:.2f} pp below PyTorch (allowed: {max_drop})", style="red")
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
