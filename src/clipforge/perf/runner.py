"""Run the worker for every (variant, encoder, batch size) in a fresh subprocess and collect the results."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import ClipforgeError, InputError
from clipforge.progress import track
from clipforge.specs import ROLES, Manifest


@dataclass
class Target:
    variant: str
    role: str
    model: str | None  # model.onnx path, or None for the torch baseline
    torch_id: str | None = None


def targets_for(path: str | Path) -> list[Target]:
    """A composite folder (both encoders), an encoder folder, or a model.onnx."""
    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        manifest = Manifest.load(path)
        return [Target(path.name, role, str(path / rel)) for role, rel in manifest.encoders.items()]
    model = path / "model.onnx" if path.is_dir() else path
    if not model.is_file():
        raise InputError(f"{path} is not a model.onnx, an encoder folder or an exported folder")
    folder = model.parent
    variant = folder.parent.name if folder.name in ROLES else folder.name  # OUT/<role>/model.onnx -> OUT
    return [Target(variant, _role_of(model), str(model))]


def _role_of(model: Path) -> str:
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()]
    return ROLES[0] if "pixel_values" in names else ROLES[1]


def run_one(target: Target, batch: int, opts: dict) -> dict:
    cmd = [sys.executable, "-m", "clipforge.perf.worker", "--role", target.role, "--batch", str(batch),
           "--warmup", str(opts["warmup"]), "--iterations", str(opts["iterations"]), "--device", opts["device"]]
    cmd += ["--torch", target.torch_id] if target.torch_id else ["--model", target.model]
    if opts.get("threads"):
        cmd += ["--threads", str(opts["threads"])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClipforgeError(f"perf worker failed for {target.variant} {target.role} batch {batch}: {last}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"variant": target.variant, "encoder": target.role, "requested_batch": batch, **result}


def run_perf(paths: list[str], batch_sizes: list[int], opts: dict, baseline_id: str | None = None,
             show: bool = True) -> list[dict]:
    targets = [t for p in paths for t in targets_for(p)]
    if baseline_id:
        roles = sorted({t.role for t in targets}, key=ROLES.index)
        targets = [Target("pytorch", role, None, baseline_id) for role in roles] + targets
    jobs = [(t, b) for t in targets for b in batch_sizes]
    return [run_one(t, b, opts) for t, b in track(jobs, "perf", total=len(jobs), show=show)]
