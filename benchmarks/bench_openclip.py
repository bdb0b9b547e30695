"""open_clip RN50-shaped image encoder (random weights), batch 16, side by side in one run:
PyTorch eager (open_clip's encode_image) vs clipforge fp32 vs int8 (dynamic MatMul-only; static MatMul-only;
static MatMul + Conv, i.e. QLinearConv). Medians over repeats; also the export times of RN50 and ViT-B-32.

    python benchmarks/bench_openclip.py [--repeats 5] [--threads N] [--skip-vit] [--json out.json]
Targets (issue 11): fp32 >= 1.3x, int8 >= 2.5x PyTorch eager.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from _common import WORK, images, timed


def cpu_info() -> dict:
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        model = platform.processor()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return {"cpu": model, "flags": [f for f in wanted if f" {f}" in flags]}


def random_checkpoint(arch: str, kind: str) -> tuple[Path, float]:
    from clipforge.testing.tiny_openclip import save_openclip_checkpoint

    folder = WORK / f"openclip-{arch}-random"
    start = time.perf_counter()
    if not (folder / "open_clip_config.json").is_file():
        save_openclip_checkpoint(folder, kind=kind, shape="base", arch=arch)
    return folder, time.perf_counter() - start


def export(arch: str, kind: str) -> tuple[Path, float]:
    from clipforge.export import export_model

    folder, _ = random_checkpoint(arch, kind)
    out = WORK / f"openclip-{arch}-export"
    start = time.perf_counter()
    export_model(folder, out, force=True, show_progress=False)  # always timed, never reused
    return out, time.perf_counter() - start


def quantized(fp32: Path, feeds: list[dict]) -> dict[str, Path]:
    from clipforge.builder import stages
    from clipforge.builder.build_config import QuantizeSection

    src, work = fp32 / "image-encoder" / "model.onnx", WORK / "openclip-rn50-quant"
    work.mkdir(parents=True, exist_ok=True)
    out = {
        "int8-dynamic (MatMul)": work / "dyn.onnx",
        "int8-static (MatMul)": work / "static-mm.onnx",
        "int8-static (MatMul+Conv)": work / "static-conv.onnx",
    }
    stages.quantize_dynamic(src, out["int8-dynamic (MatMul)"], QuantizeSection(), work)
    stages.quantize_static(src, out["int8-static (MatMul)"], QuantizeSection(), feeds, work)
    stages.quantize_static(
        src, out["int8-static (MatMul+Conv)"], QuantizeSection(op_types=["MatMul", "Conv"]), feeds, work
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-vit", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    from clipforge.export.openclip_io import load_openclip
    from clipforge.hub import OpenClipSource
    from clipforge.runtime.model import ZeroShotModel

    if args.threads:
        torch.set_num_threads(args.threads)
    report = {**cpu_info(), "torch_threads": torch.get_num_threads(), "batch": 16, "export_seconds": {}}
    rn50, report["export_seconds"]["RN50"] = export("RN50", "resnet")
    if not args.skip_vit:
        _, report["export_seconds"]["ViT-B-32"] = export("ViT-B-32", "vit")
    model = ZeroShotModel.from_onnx(rn50, threads=args.threads)
    pixels = model.preprocess(images(16))
    feeds = [{"pixel_values": model.preprocess(images(4, seed=s))} for s in range(1, 5)]
    variants = {"fp32": rn50 / "image-encoder" / "model.onnx", **quantized(rn50, feeds)}
    torch_model = load_openclip(OpenClipSource(random_checkpoint("RN50", "resnet")[0])).model.inner
    x = torch.from_numpy(pixels)
    with torch.inference_mode():
        reference = torch_model.encode_image(x).numpy()
        t_torch, _ = timed(lambda: torch_model.encode_image(x), args.repeats)
    rows = {"pytorch-eager (open_clip)": {"seconds": t_torch, "images_per_s": 16 / t_torch, "ratio": 1.0}}
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    for name, path in variants.items():
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        run = lambda session=session: session.run(None, {"pixel_values": pixels})[0]  # noqa: E731
        run()
        seconds, out = timed(run, args.repeats)
        norms = np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1)
        cos = float(np.min(np.sum(out * reference, 1) / norms))
        rows[f"clipforge {name}"] = {
            "seconds": seconds,
            "images_per_s": 16 / seconds,
            "ratio": t_torch / seconds,
            "min_cosine_vs_torch": cos,
            "bytes": path.stat().st_size,
        }
    report["image_tower_rn50_batch16"] = rows
    for name, row in rows.items():
        extra = f"  cos {row['min_cosine_vs_torch']:.5f}" if "min_cosine_vs_torch" in row else ""
        print(f"{name:34s} {row['images_per_s']:7.1f} img/s  {row['ratio']:5.2f}x{extra}")
    print(
        "export seconds:",
        {k: round(v, 1) for k, v in report["export_seconds"].items()},
        "|",
        report["cpu"],
        report["flags"],
        f"torch threads {report['torch_threads']}",
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
