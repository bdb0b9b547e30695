"""Cold start and memory, each measured in a fresh process, side by side in one run (random-weight
ViT-B/32-shaped CLIP builds from bench_encoders):

- cold start: process start (the parent's clock before spawning) -> first embedding of a 640x480 JPEG read
  from disk, with the split imports / sessions / first run printed by the child; clipforge builds (with the
  optimised graphs the build saved for this machine, and without: '+portable') vs PyTorch (transformers).
  Every target runs once untimed first (OpenVINO's compiled-model cache, the OS page cache), then round-robin.
- classify peak RSS: 32 images x 100 labels, clipforge vs PyTorch doing the same work (labels encoded once,
  images in batches of 16); peak RSS of each child (VmHWM).
    python benchmarks/bench_startup.py [--repeats 3] [--builds int8-dynamic,none] [--backends onnxruntime+lazy,openvino]
    python benchmarks/bench_startup.py --sessions [--builds int8-dynamic]   # what session creation spends on
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import WORK, b32_checkpoint

HERE = Path(__file__).resolve().parent
COLD_JPEG = WORK / "cold-640x480.jpg"


def _child_clipforge(folder: str, job: str, backend: str) -> dict:
    marks = {"start": time.time()}
    from clipforge.runtime.model import ZeroShotModel

    marks["imports"] = time.time()
    backend, *flags = backend.split("+")  # "+lazy": open each encoder on first use; "+noarena": arena off
    model = ZeroShotModel.from_onnx(folder, backend=backend, lazy="lazy" in flags, arena="noarena" not in flags)
    marks["sessions"] = time.time()
    if job == "cold":
        model.embed_images([str(COLD_JPEG)])  # a JPEG on disk, as a user's first call would read it
    else:
        from _common import images, labels

        model.classify(images(32), labels(100), batch_size=16)
    marks["done"] = time.time()
    return marks


def _child_torch(folder: str, job: str) -> dict:
    marks = {"start": time.time()}
    from _common import images, labels  # first: imports clipforge, whose guard makes torchvision importable

    # isort: split
    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    marks["imports"] = time.time()
    model, proc = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    marks["sessions"] = time.time()
    with torch.inference_mode():
        imgs = [Image.open(COLD_JPEG)] if job == "cold" else images(32)
        if job != "cold":
            text = proc(text=[f"This is a photo of {x}." for x in labels(100)], return_tensors="pt", padding=True)
            t = model.get_text_features(**text).pooler_output
        for i in range(0, len(imgs), 16):
            e = model.get_image_features(**proc(images=imgs[i : i + 16], return_tensors="pt")).pooler_output
            if job != "cold":
                np.asarray((e @ t.T).softmax(-1))
    marks["done"] = time.time()
    return marks


def child(args) -> None:
    marks = (
        _child_torch(args.folder, args.job)
        if args.backend == "pytorch"
        else _child_clipforge(args.folder, args.job, args.backend)
    )
    from clipforge.perf.worker import peak_rss_mb

    marks["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(marks))


def spawn(folder: Path, job: str, backend: str) -> dict:
    begin = time.time()
    cmd = [
        sys.executable,
        str(HERE / "bench_startup.py"),
        "--child",
        job,
        "--folder",
        str(folder),
        "--backend",
        backend,
    ]
    env = {**os.environ, "CLIPFORGE_CACHE": str(WORK / "cache")}  # OpenVINO's compiled-model cache
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, env=env)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "total_s": m["done"] - begin,
        "interpreter_s": m["start"] - begin,
        "imports_s": m["imports"] - m["start"],
        "load_s": m["sessions"] - m["imports"],
        "work_s": m["done"] - m["sessions"],
        "peak_rss_mb": m["peak_rss_mb"],
    }


def session_split(folder: Path, repeats: int) -> dict:
    """What session creation spends its time on (onnxruntime's profiler: model loading vs initialisation),
    for the graph as built and for the provider-optimised graph saved beforehand and loaded without
    re-optimising; round-robin medians."""
    import onnxruntime as ort

    from clipforge.specs import Manifest

    image = folder / Manifest.load(folder).encoders["image-encoder"]
    saved = WORK / f"{folder.name}-image-optimized.onnx"
    if not saved.is_file():
        opts = ort.SessionOptions()
        opts.optimized_model_filepath, opts.log_severity_level = str(saved), 3
        ort.InferenceSession(str(image), opts, providers=["CPUExecutionProvider"])
    cases = {
        "as built (optimise all)": (image, "ORT_ENABLE_ALL", "0"),
        "saved optimised, optimise off": (saved, "ORT_DISABLE_ALL", "0"),
        "as built, no weight prepacking": (image, "ORT_ENABLE_ALL", "1"),
    }
    got = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (path, level, no_prepack) in cases.items():
            opts = ort.SessionOptions()
            opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            opts.enable_profiling, opts.log_severity_level = True, 3
            opts.profile_file_prefix = str(WORK / "session-profile")
            opts.add_session_config_entry("session.disable_prepacking", no_prepack)
            start = time.perf_counter()
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            total = time.perf_counter() - start
            events = json.loads(Path(session.end_profiling()).read_text())
            split = {e["name"]: e["dur"] / 1e6 for e in events if e.get("cat") == "Session"}
            got[name].append({"total_s": total, **split})
    return {name: {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} for name, runs in got.items()}


def prepare(mode: str, portable: bool) -> Path:
    """The build folder for ``mode`` (rebuilt if it predates saved optimised graphs); ``portable``: a copy
    (hard links) without them, so both load paths are measured side by side."""
    import numpy as np
    from bench_encoders import builds
    from PIL import Image

    if not COLD_JPEG.is_file():
        pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(COLD_JPEG, quality=90)
    folder = builds((mode,))[mode]
    if not (folder / "image-encoder" / "model.optimized.json").is_file():
        folder = builds((mode,), rebuild=(mode,))[mode]
    if not portable:
        return folder
    copy = WORK / f"clip-b32-{mode}-portable"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy, copy_function=os.link, ignore=shutil.ignore_patterns("*.optimized.*"))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--builds", default="int8-dynamic,none")
    parser.add_argument(
        "--backends",
        default="onnxruntime+lazy,onnxruntime+lazy+portable,onnxruntime,openvino",
        help="onnxruntime, openvino; '+lazy' opens each encoder on first use, '+noarena' turns "
        "onnxruntime's memory arena off, '+portable' loads the build without its saved "
        "optimised graphs",
    )
    parser.add_argument("--child")
    parser.add_argument("--folder")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--job", default="cold")
    parser.add_argument("--sessions", action="store_true", help="only the session-creation split")
    args = parser.parse_args()
    if args.sessions:
        split = session_split(WORK / f"clip-b32-{args.builds.split(',')[0]}", args.repeats)
        for name, r in split.items():
            print(f"{name:32} " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()))
        print(json.dumps(split))
        return
    if args.child:
        args.job = args.child
        return child(args)
    targets = [("pytorch", b32_checkpoint(), "pytorch")]
    targets += [
        (f"{b} {be}", prepare(b, "portable" in be), be)
        for b in args.builds.split(",")
        for be in args.backends.split(",")
    ]
    for _name, folder, backend in targets:  # fill OpenVINO's cache, the page cache and the JPEG first
        spawn(folder, "cold", backend)
    rows = {}
    for job in ("cold", "classify"):
        runs = {name: [] for name, _, _ in targets}
        for _ in range(args.repeats):  # round-robin: a busy machine slows every target alike
            for name, folder, backend in targets:
                runs[name].append(spawn(folder, job, backend))
        for name, r in runs.items():
            rows[f"{job}: {name}"] = {k: round(statistics.median(x[k] for x in r), 3) for k in r[0]}
    torch_rss = rows["classify: pytorch"]["peak_rss_mb"]
    for name, r in rows.items():
        r["rss_x_torch"] = round(r["peak_rss_mb"] / torch_rss, 2) if name.startswith("classify") else None
        print(
            f"{name:32} total {r['total_s']:6.2f}s (interpreter {r['interpreter_s']:.2f}, imports "
            f"{r['imports_s']:.2f}, load {r['load_s']:.2f}, work {r['work_s']:.2f})  peak RSS "
            f"{r['peak_rss_mb']:.0f} MB" + (f" = {r['rss_x_torch']:.2f}x PyTorch" if r["rss_x_torch"] else "")
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
