"""``clipforge perf``: latency and throughput per encoder and batch size, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipforge import output
from clipforge.errors import InputError
from clipforge.perf.report import plot_throughput, print_table
from clipforge.perf.sweep import run_perf
from clipforge.runtime.backends import check_backend


def _batches(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"--batch-size {text!r} must be comma-separated integers, e.g. 1,8,32") from exc
    if not values or min(values) < 1:
        raise InputError(f"--batch-size {text!r} must list positive integers")
    return values


def perf(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Exported/built folders, encoder folders, model.onnx files, or models to export first "
            "(checkpoint folder, hub id, open_clip source)."
        ),
    ],
    device: Annotated[str, typer.Option("--device", "-d")] = "cpu",
    batch_size: Annotated[str, typer.Option("--batch-size", help="Comma-separated, e.g. 1,8,32.")] = "1,8",
    threads: Annotated[int | None, typer.Option("--threads")] = None,
    warmup: Annotated[int, typer.Option("--warmup")] = 2,
    iterations: Annotated[int, typer.Option("--iterations")] = 10,
    baseline: Annotated[str | None, typer.Option("--baseline", help="'torch' adds the PyTorch reference.")] = None,
    model_id: Annotated[str | None, typer.Option("--model-id", help="Checkpoint for --baseline torch.")] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the rows as JSON to FILE, or to stdout with '--json -' (instead of the table)."
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Throughput chart (PNG).")] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="onnxruntime, openvino, or auto (what the build chose).")
    ] = "auto",
    precision: Annotated[
        str | None, typer.Option("--precision", help="fp32 or bf16 (OpenVINO); default: what the build chose.")
    ] = None,
    roofline: Annotated[
        bool,
        typer.Option("--roofline", help="Add the matmul limit and the fraction reached (GEMM peaks measured now)."),
    ] = False,
    gemm_size: Annotated[int, typer.Option("--gemm-size", help="GEMM side for --roofline peaks.")] = 2048,
    max_patches: Annotated[
        int | None,
        typer.Option("--max-patches", help="SigLIP 2 NaFlex image encoders: patches per image (default: the budget)."),
    ] = None,
) -> None:
    """Benchmark encoders: load time, p50/p90/p99 latency, items/s, peak memory."""

    if baseline not in (None, "torch") or (baseline and not model_id):
        raise InputError("--baseline takes 'torch' and needs --model-id (the checkpoint the graphs came from)")

    opts = {
        "device": device,
        "threads": threads,
        "warmup": warmup,
        "iterations": iterations,
        "backend": check_backend(backend),
        "precision": precision,
        "roofline": roofline and gemm_size,
        "max_patches": max_patches,
    }
    rows = run_perf(paths, _batches(batch_size), opts, model_id if baseline else None)
    if not output.is_stdout(json_out):
        print_table(rows)
    output.write_json(json_out, rows)
    if plot:
        plot_throughput(rows, plot)


def register(app: typer.Typer) -> None:
    app.command("perf")(perf)
