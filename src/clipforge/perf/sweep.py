"""Run the worker for every (variant, encoder, batch size) in a fresh subprocess and collect the results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import ClipforgeError, InputError
from clipforge.hub import found_at
from clipforge.models import model_folder
from clipforge.perf.roofline import best_peaks, flops_per_item, fraction, gemm_peaks, graph_precision
from clipforge.progress import track
from clipforge.runtime.backends import resolve
from clipforge.specs import ROLES, Manifest


@dataclass
class Target:
    variant: str
    encoder: str
    model: str | None  # model.onnx path, or None for the torch baseline
    torch_id: str | None = None
    backend: str = "onnxruntime"
    precision: str = "fp32"


def targets_for(path: str | Path) -> list[Target]:
    """A composite folder (both encoders), an encoder folder, a model.onnx, or any model the resolver takes
    (checkpoint folder, hub id, open_clip source: exported once into the cache, named as given)."""
    name, path = str(path), Path(path)
    if not (path / "manifest.json").is_file() and not (path / "model.onnx").is_file() and path.suffix != ".onnx":
        try:
            path = model_folder(name)
        except InputError as exc:
            raise InputError(f"{exc}; perf also takes an encoder folder or its model.onnx") from exc
    if path.is_dir() and (path / "manifest.json").is_file():
        manifest = Manifest.load(path)
        runtime = manifest.build.get("runtime", {})
        variant = path.name if name == str(path) else name
        return [
            Target(variant, encoder, str(path / rel), **runtime.get(encoder, {}))
            for encoder, rel in manifest.encoders.items()
        ]
    model = path / "model.onnx" if path.is_dir() else path
    if not model.is_file():
        raise InputError(
            f"perf {path}: found {found_at(path)}; pass an exported or built folder (manifest.json), an "
            "encoder folder or a model.onnx"
        )
    folder = model.parent
    variant = folder.parent.name if folder.name in ROLES else folder.name  # OUT/<encoder>/model.onnx -> OUT
    return [Target(variant, _encoder_of(model), str(model))]


def _encoder_of(model: Path) -> str:
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()]
    return ROLES[0] if "pixel_values" in names else ROLES[1]


def run_one(target: Target, batch: int, opts: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "clipforge.perf.worker",
        "--encoder",
        target.encoder,
        "--batch",
        str(batch),
        "--warmup",
        str(opts["warmup"]),
        "--iterations",
        str(opts["iterations"]),
        "--device",
        opts["device"],
    ]
    if target.torch_id:
        cmd += ["--torch", target.torch_id]
    else:
        backend, precision = _backend(target, opts.get("backend", "auto"), opts.get("precision"))
        cmd += ["--model", target.model, "--backend", backend, "--precision", precision]
    if opts.get("threads"):
        cmd += ["--threads", str(opts["threads"])]
    if opts.get("max_patches") and target.encoder == ROLES[0]:
        cmd += ["--patches", str(opts["max_patches"])]
    cmd += ["--spawned-at", repr(time.time())]  # the worker reports process start -> first result
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClipforgeError(f"perf worker failed for {target.variant} {target.encoder} batch {batch}: {last}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "variant": f"{target.variant} @{result['patches']}p" if result.get("patches") else target.variant,
        "encoder": target.encoder,
        "requested_batch": batch,
        "model": target.model,
        **result,
    }


def _backend(target: Target, backend: str, precision: str | None = None) -> tuple[str, str]:

    return resolve(backend, {"backend": target.backend, "precision": target.precision}, precision)


def run_perf(
    paths: list[str], batch_sizes: list[int], opts: dict, baseline_id: str | None = None, show: bool = True
) -> list[dict]:
    targets = [t for p in paths for t in targets_for(p)]
    if baseline_id:
        encoders = sorted({t.encoder for t in targets}, key=ROLES.index)
        targets = [Target("pytorch", encoder, None, baseline_id) for encoder in encoders] + targets
    jobs = [(t, b) for t in targets for b in batch_sizes]
    rows = [run_one(t, b, opts) for t, b in track(jobs, "perf", total=len(jobs), show=show)]
    return add_roofline(rows, opts["roofline"]) if opts.get("roofline") else rows


def add_roofline(rows: list[dict], gemm_size: int = 2048) -> list[dict]:
    """Each row's matmul limit (FLOPs per item from its graph / this machine's best GEMM peak in the row's
    precision, measured now) and its fraction; the PyTorch rows are fp32 of the same graphs' FLOPs."""

    backends = ["onnxruntime", "openvino", "pytorch"]
    best = best_peaks(gemm_peaks(backends, n=gemm_size, repeats=3))
    flops = {}
    for r in rows:
        graph = r["model"] or next((x["model"] for x in rows if x["model"] and x["encoder"] == r["encoder"]), None)
        key = (graph, r.get("text_length"), r.get("patches"))
        if graph and key not in flops:  # per NaFlex budget: FLOPs grow with the patches (attention: squared)
            flops[key] = flops_per_item(graph, r.get("text_length") or 77, r.get("patches"))
        precision = graph_precision(r["model"], r.get("precision")) if r["model"] else "fp32"
        if graph and precision in best:
            r.update(precision=precision, **fraction(r["items_per_s"], flops[key], best[precision][0]))
    return rows
