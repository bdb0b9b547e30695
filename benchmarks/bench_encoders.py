"""Encoder throughput side by side in one run, random-weight ViT-B/32-shaped CLIP: PyTorch eager fp32
(transformers) vs clipforge builds (fp32, bf16, int8-dynamic, int8-static) on each backend (onnxruntime,
OpenVINO), each with its fraction of the matmul limit measured in this run and its ratio to PyTorch.

Image encoder at batch 16; text encoder on 100 prompts (padded to the longest). Variants are timed round-robin
(one call of each per round, the GEMMs of the limit in the same rounds) so a busy machine slows them alike;
medians over rounds, by wall clock and by process CPU time. The limit of a row is
FLOPs per item (counted from the graph) / the machine's best GEMM peak in that row's precision (2048², threads =
cores; see benchmarks/roofline.py for the per-backend table).
    python benchmarks/bench_encoders.py [--repeats 5] [--only onnxruntime,openvino]
Builds are made once under $CLIPFORGE_BENCH_DIR; CLIPFORGE_BENCH_REBUILD=int8-static,... rebuilds those.
"""

from __future__ import annotations

import argparse
import json
import os

from _common import WORK, b32_checkpoint, images, labels

# (row name, build mode, backend); bf16 runs where the build says (OpenVINO with the bf16 hint)
VARIANTS = [
    ("fp32 onnxruntime", "none", "onnxruntime"),
    ("fp32 openvino", "none", "openvino"),
    ("bf16 openvino", "bf16", "auto"),
    ("int8-dynamic onnxruntime", "int8-dynamic", "onnxruntime"),
    ("int8-dynamic openvino", "int8-dynamic", "openvino"),
    ("int8-static onnxruntime", "int8-static", "onnxruntime"),
    ("int8-static openvino", "int8-static", "openvino"),
    ("int8-static openvino+bf16", "int8-static", "openvino+bf16"),
]  # float parts in bf16
TORCH = "pytorch eager fp32"


def torch_runs(folder, pixels, tokens):
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    p, ids, mask = (torch.from_numpy(x) for x in (pixels, tokens.input_ids, tokens.attention_mask))

    def image():
        with torch.inference_mode():
            return model.get_image_features(pixel_values=p).pooler_output

    def text():
        with torch.inference_mode():
            return model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output

    return image, text


def clipforge_runs(folder, backend, pixels, tokens):
    from clipforge.runtime.model import ZeroShotModel

    backend, _, precision = backend.partition("+")  # "openvino+bf16": an explicit run-time precision
    model = ZeroShotModel.from_onnx(folder, backend=backend, precision=precision or None)
    return (
        (lambda: model.encode_pixels(pixels)),
        (lambda: model.encode_tokens(tokens.input_ids, tokens.attention_mask)),
        model.backends,
    )


def builds(modes=("none", "int8-dynamic", "int8-static", "bf16"), rebuild=()) -> dict:
    """Build folders under WORK, built once: an existing folder is reused unless its mode is in ``rebuild``
    (the build's own cache would rebuild on any clipforge version/config change). A folder
    ``clip-b32-<mode>-before`` left by hand is measured too (before/after comparisons)."""
    from clipforge.builder import build_composite
    from clipforge.runtime.cpu import has_bf16

    ckpt, out = b32_checkpoint(), {}
    for mode in [m for m in modes if m != "bf16" or has_bf16()]:
        folder = WORK / f"clip-b32-{mode}"
        if mode in rebuild or not (folder / "manifest.json").is_file():
            build_composite(ckpt, folder, quantize=mode, force=True, show_progress=False)
        out[mode] = folder
        if (WORK / f"clip-b32-{mode}-before" / "manifest.json").is_file():
            out[f"{mode}-before"] = WORK / f"clip-b32-{mode}-before"
    return out


def precision_of(folder, role: str, backend_name: str) -> str:
    from clipforge.perf.roofline import graph_precision
    from clipforge.specs import Manifest

    path = folder / Manifest.load(folder).encoders[role]
    return graph_precision(path, "bf16" if backend_name.endswith("bf16") else None)


def setup(only: set | None):
    """Variants to time: {name: (image_fn, text_fn, {role: precision})}, plus pixels/tokens/folders."""
    from clipforge.runtime.backends import openvino_available
    from clipforge.runtime.cpu import has_bf16
    from clipforge.runtime.model import ZeroShotModel

    folders = builds(rebuild=set(filter(None, os.environ.get("CLIPFORGE_BENCH_REBUILD", "").split(","))))
    fp32 = ZeroShotModel.from_onnx(folders["none"], backend="onnxruntime")
    pixels = fp32.preprocess(images(16))
    tokens = fp32.tokenizer.encode([f"a photo of a {x}." for x in labels(100)])
    runs = {TORCH: (*torch_runs(b32_checkpoint(), pixels, tokens), {"image-encoder": "fp32", "text-encoder": "fp32"})}
    before = [(f"{n} (before)", f"{m}-before", b) for n, m, b in VARIANTS if f"{m}-before" in folders]
    for name, mode, backend in VARIANTS + before:
        wanted = not only or any(o in name for o in only)
        if (
            mode not in folders
            or not wanted
            or ("openvino" in name and not openvino_available())
            or (backend.endswith("+bf16") and not has_bf16())
        ):
            continue
        image, text, used = clipforge_runs(folders[mode], backend, pixels, tokens)
        runs[name] = (image, text, {r: precision_of(folders[mode], r, b) for r, b in used.items()})
    return runs, pixels, tokens, folders


def item_flops(folders, tokens) -> dict:
    """FLOPs per image and per text (at the padded length) counted from the unfused fp32 graphs."""
    from clipforge.perf.roofline import flops_per_item
    from clipforge.specs import Manifest

    folder = folders.get("bf16") or folders["int8-dynamic"]  # graphs without ORT contrib fusions: quick to infer
    enc = Manifest.load(folder).encoders
    return {
        "image-encoder": flops_per_item(folder / enc["image-encoder"]),
        "text-encoder": flops_per_item(folder / enc["text-encoder"], tokens.input_ids.shape[1]),
    }


def measure(repeats: int, only: set | None) -> dict:
    """Encoders and GEMMs in the same rounds: their load is alike, so the fractions hold on a shared machine.
    Results per clock (wall, cpu): GEMM peaks, best peak per precision, and rows."""
    from clipforge.perf.roofline import CLOCKS, gemm_calls, round_robin

    runs, _, tokens, folders = setup(only)
    calls = {
        (name, role): fn
        for name, (image, text, _) in runs.items()
        for role, fn in (("image-encoder", image), ("text-encoder", text))
    }
    gemms, reasons = gemm_calls()
    calls.update({("gemm", *key): fn for key, fn in gemms.items()})
    medians = round_robin(calls, repeats)
    flops = item_flops(folders, tokens)
    out = {"gflop_per_item": {k: v / 1e9 for k, v in flops.items()}}
    for clock in CLOCKS:
        out[clock] = _rows(runs, medians[clock], reasons, flops, len(tokens.input_ids), clock)
    return out


def _rows(runs: dict, seconds: dict, reasons: dict, flops: dict, texts: int, clock: str) -> dict:
    from clipforge.perf.roofline import best_peaks, fraction, peaks_from, per_second

    peaks = peaks_from({k[1:]: v for k, v in seconds.items() if k[0] == "gemm"}, reasons, clock=clock)
    best, n, rows = best_peaks(peaks), {"image-encoder": 16, "text-encoder": texts}, {}
    for (name, role), t in ((k, v) for k, v in seconds.items() if k[0] != "gemm"):
        precision = runs[name][2][role]
        rate = per_second(n[role], t, clock)
        rows.setdefault(name, {})[role] = {
            "per_s": round(rate, 2),
            "precision": precision,
            **fraction(rate, flops[role], best[precision][0]),
            "x_torch": round(seconds[(TORCH, role)] / t, 2),
        }
    return {"gemm_peaks": peaks, "best_peaks": best, "rows": rows}


def print_rows(result: dict) -> None:
    print(
        f"{'variant':28} {'prec':>5} {'img/s':>7} {'limit':>7} {'%lim':>5} {'x torch':>7} "
        f"{'txt/s':>7} {'limit':>7} {'%lim':>5} {'x torch':>7}"
    )
    for name, r in result["rows"].items():
        i, t = r["image-encoder"], r["text-encoder"]
        print(
            f"{name:28} {i['precision']:>5} {i['per_s']:7.1f} {i['limit_per_s']:7.1f} {100 * i['fraction']:5.1f} "
            f"{i['x_torch']:7.2f} {t['per_s']:7.1f} {t['limit_per_s']:7.1f} {100 * t['fraction']:5.1f} "
            f"{t['x_torch']:7.2f}"
        )


def print_all(result: dict, print_peaks=None) -> None:
    for clock, title in (
        ("wall", "wall-clock"),
        ("cpu", "CPU-time basis (rate if the process had the cores alone; robust to time-slicing on a shared machine)"),
    ):
        print(f"\n== {title}")
        if print_peaks:
            print_peaks(result[clock]["gemm_peaks"])
        print_rows(result[clock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant names")
    args = parser.parse_args()
    from clipforge.runtime.cpu import describe

    print(json.dumps({"cpu": describe()}))
    result = measure(args.repeats, set(filter(None, args.only.split(","))))
    print(json.dumps(result))
    print_all(result)


if __name__ == "__main__":
    main()
