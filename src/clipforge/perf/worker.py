"""Measure one encoder at one batch size in this process; print one JSON line. Run by ``clipforge perf``:

    python -m clipforge.perf.worker --model PATH --encoder image-encoder --batch 8 [--torch MODEL_ID]

Inputs are synthetic: images N(0,1) at the graph's size; texts of ``--text-length`` tokens (16, a typical prompt)
or the graph's fixed length for static/SigLIP graphs; NaFlex images: ``--patches`` patches (default: the
manifest's budget) of N(0,1), laid out as the squarest grid that fills them.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from clipforge.export.checkpoint import load_checkpoint
from clipforge.runtime.sessions import SessionConfig, make_session
from clipforge.specs import Manifest


def _percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _onnx_call(args):
    """A callable running the graph on synthetic inputs; a static batch dimension overrides ``--batch``."""

    config = SessionConfig(device=args.device, threads=args.threads, backend=args.backend, precision=args.precision)
    session = make_session(args.model, config)
    args.text_length = _fixed_text_length(args.model) or args.text_length
    names = [inp.name for inp in session.get_inputs()]
    if "spatial_shapes" in names:  # NaFlex: patches, their mask, the grid
        manifest = _manifest(args.model)
        args.patches = args.patches or (manifest.image.max_patches if manifest else 256)
        feed = naflex_inputs(args.batch, args.patches, session.get_inputs()[0].shape[-1])
        return lambda: session.run(None, feed)
    feed = {}
    for inp in session.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
        args.batch = dims[0] or args.batch
        feed[inp.name] = _synthetic(inp.name, [args.batch, *dims[1:]], args.text_length)
        if inp.name == "input_ids":
            args.text_length = feed[inp.name].shape[1]
    return lambda: session.run(None, feed)


def _manifest(model: str) -> Manifest | None:
    folder = Path(model).parent.parent
    return Manifest.load(folder) if (folder / "manifest.json").is_file() else None


def _fixed_text_length(model: str) -> int | None:
    """The context length when the export's manifest pads texts to it (open_clip graphs need exactly that)."""

    manifest = _manifest(model)
    if manifest is None:
        return None
    return manifest.text.context_length if manifest.text.padding == "max_length" else None


def naflex_inputs(batch: int, patches: int, width: int) -> dict:
    """Synthetic NaFlex inputs: ``patches`` rows per image, the squarest grid that fits them."""
    rows = max(1, int(patches**0.5))
    cols = patches // rows
    mask = np.zeros((batch, patches), np.int64)
    mask[:, : rows * cols] = 1
    return {
        "pixel_values": np.random.default_rng(0).standard_normal((batch, patches, width)).astype(np.float32),
        "pixel_attention_mask": mask,
        "spatial_shapes": np.array([[rows, cols]] * batch, np.int64),
    }


def _synthetic(name: str, shape: list, text_length: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if name == "pixel_values":
        return rng.standard_normal([d or 224 for d in shape]).astype(np.float32)
    shape = [shape[0], shape[1] or text_length]
    if name == "attention_mask":
        return np.ones(shape, np.int64)
    return rng.integers(1, 256, shape).astype(np.int64)


def _torch_call(args):
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    ckpt = load_checkpoint(args.torch)
    model = ckpt.model
    if args.encoder == "image-encoder" and ckpt.image.naflex:
        args.patches = args.patches or ckpt.image.max_patches
        inputs = {
            k: torch.from_numpy(v)
            for k, v in naflex_inputs(args.batch, args.patches, 3 * ckpt.image.patch_size**2).items()
        }
        return lambda: _no_grad(lambda: model.get_image_features(**inputs))
    if args.encoder == "image-encoder":
        h, w = ckpt.image.output_size
        x = torch.randn(args.batch, 3, h, w)
        return lambda: _no_grad(lambda: model.get_image_features(pixel_values=x))
    length = ckpt.text.context_length if ckpt.text.padding == "max_length" else args.text_length
    ids = torch.randint(1, 256, (args.batch, length))
    return lambda: _no_grad(lambda: model.get_text_features(input_ids=ids))


def _no_grad(fn):
    import torch

    with torch.inference_mode():
        return fn()


def measure(args) -> dict:
    start = time.perf_counter()
    call = _torch_call(args) if args.torch else _onnx_call(args)
    load = time.perf_counter() - start
    call()  # the first result: process start -> here is the cold start
    first = time.time() - args.spawned_at if args.spawned_at else None
    for _ in range(max(0, args.warmup - 1)):
        call()
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    peak_mb = peak_rss_mb()
    runs_on = (
        {"backend": "pytorch", "precision": "fp32"}
        if args.torch
        else {"backend": args.backend, "precision": args.precision}
    )
    return {
        "batch": args.batch,
        "text_length": args.text_length,
        **({"patches": args.patches} if args.patches else {}),
        **runs_on,
        "load_s": load,
        **_percentiles(times),
        "items_per_s": args.batch / float(np.median(times)),
        "peak_rss_mb": peak_mb,
        "first_s": first,
    }


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM where /proc has it (ru_maxrss of a forked child starts at its
    parent's RSS, so a large parent would inflate every worker's figure)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--torch", default=None)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--text-length", type=int, default=16)
    parser.add_argument("--patches", type=int, default=None, help="NaFlex: patches per image (default: the budget)")
    parser.add_argument("--spawned-at", type=float, default=None, help="the parent's clock (time.time()) at spawn")
    args = parser.parse_args()
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()
