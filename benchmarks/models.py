"""Which model to pick: encoder speed of several architectures side by side in one run, fp32 and int8-dynamic
builds made by clipforge (export, validation, build), random weights at the real sizes.

Image encoder img/s at batch 1 and 16, text encoder texts/s on 32 prompts (open_clip pads to 77 tokens, SigLIP to
64; SigLIP 2 NaFlex takes the same build at two patch budgets, 256 and 576, a load option). Every call of every model
and build is timed round-robin (one call of each per round, after a warm-up), so a
busy machine slows them alike; medians over rounds, wall clock. Speed does not depend on the weights' values, so
random weights stand for the trained checkpoints (accuracy does not: see docs/models.md for published figures).

    python benchmarks/models.py [--models MobileCLIP2-S0 ViT-B-32 ...] [--modes none int8-dynamic int8-static]
                                [--repeats 5] [--threads N] [--json out.json]
Builds are made once under $CLIPFORGE_BENCH_DIR (reused when present).
"""

from __future__ import annotations

import argparse
import json
import time

from _common import WORK, images, labels

# row name -> (family, keywords of clipforge.testing.checkpoints.save_tiny_checkpoint)
MODELS = {
    "MobileCLIP2-S0": ("openclip", {"shape": "base", "arch": "MobileCLIP2-S0"}),
    "MobileCLIP-S1": ("openclip", {"shape": "base", "arch": "MobileCLIP-S1"}),
    "ViT-B-32": ("openclip", {"shape": "base", "arch": "ViT-B-32"}),
    "ViT-B-16": ("openclip", {"shape": "base", "arch": "ViT-B-16"}),
    "SigLIP B/16 224": ("siglip", {"shape": "base"}),  # transformers' SiglipConfig defaults: base, patch 16, 224
    # Siglip2Config defaults: base, patch 16, a 16x16 position grid; one build, loaded at two budgets
    "SigLIP 2 NaFlex 256": ("siglip2", {"shape": "base"}),
    "SigLIP 2 NaFlex 576": ("siglip2", {"shape": "base"}),
}
BUDGETS = {"SigLIP 2 NaFlex 256": 256, "SigLIP 2 NaFlex 576": 576}  # row -> max_patches at load
MODES = {"none": "fp32", "int8-dynamic": "int8-dynamic", "int8-static": "int8-static"}
IMAGE_BATCHES = (1, 16)
TEXTS = 32


def _slug(name: str) -> str:
    if name in BUDGETS:  # the rows of one NaFlex build share its checkpoint and builds
        name = "SigLIP 2 NaFlex"
    return name.replace("/", "").replace(" ", "-")


def checkpoint(name: str):
    from clipforge.testing.checkpoints import save_tiny_checkpoint

    family, kwargs = MODELS[name]
    folder = WORK / f"models-{_slug(name)}-random"
    marker = "open_clip_config.json" if family == "openclip" else "config.json"
    if not (folder / marker).is_file():
        save_tiny_checkpoint(family, folder, **kwargs)
    return folder


def build(name: str, mode: str) -> tuple:
    """(folder, seconds): the build of ``name`` in ``mode``, made once (the fp32 export is shared by the modes)."""
    from clipforge.builder import build_composite

    folder = WORK / f"models-{_slug(name)}-{mode}"
    start = time.perf_counter()
    if not (folder / "manifest.json").is_file():
        build_composite(checkpoint(name), folder, quantize=mode, force=True, show_progress=False)
    return folder, time.perf_counter() - start


def calls_for(folder, threads: int | None, max_patches: int | None = None) -> dict:
    """{(encoder, batch): call} for one build, its inputs made by the build's own pre-processing and tokenizer
    (a NaFlex build: at the row's patch budget)."""
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(folder, backend="onnxruntime", threads=threads, max_patches=max_patches)
    pixels = model.preprocess(images(max(IMAGE_BATCHES)))
    tokens = model.tokenizer.encode([f"a photo of a {x}." for x in labels(TEXTS)])
    calls = {("image-encoder", b): (lambda p=pixels[:b]: model.encode_pixels(p)) for b in IMAGE_BATCHES}
    calls[("text-encoder", TEXTS)] = lambda: model.encode_tokens(tokens.input_ids, tokens.attention_mask)
    return calls


def describe_build(folder, max_patches: int | None = None) -> dict:
    from clipforge.specs import Manifest

    manifest = Manifest.load(folder)
    image = manifest.towers.get("image-encoder", {})
    return {
        "image_size": list(manifest.image.output_size),
        **({"patches": max_patches} if max_patches else {}),
        "text_length": manifest.text.context_length,
        "reparameterized": bool(image.get("reparameterized")),
        "folded": image.get("folded", {}),
    }


def measure(names, modes, repeats: int, threads: int | None) -> dict:
    from clipforge.perf.roofline import round_robin

    calls, rows = {}, {}
    for name in names:
        for mode in modes:
            print(f"# building {name} {MODES[mode]} ...", flush=True)
            folder, seconds = build(name, mode)
            budget = BUDGETS.get(name)
            rows[(name, mode)] = {"folder": str(folder), "build_s": round(seconds, 1), **describe_build(folder, budget)}
            calls.update({(name, mode, *key): fn for key, fn in calls_for(folder, threads, budget).items()})
    print(f"# timing {len(calls)} calls, {repeats} rounds ...", flush=True)
    medians = round_robin(calls, repeats)["wall"]
    for (name, mode, encoder, batch), seconds in medians.items():
        key = f"image_b{batch}_per_s" if encoder == "image-encoder" else "text_per_s"
        rows[(name, mode)][key] = round(batch / seconds, 2)
    return rows


def print_table(rows: dict) -> None:
    print("| model | build | image px | img/s b1 | img/s b16 | texts/s (32) | reparameterized |")
    print("|---|---|---|---|---|---|---|")
    for (name, mode), r in rows.items():
        size = f"{r['patches']} patches" if "patches" in r else r["image_size"][0]
        print(
            f"| {name} | {MODES[mode]} | {size} | {r['image_b1_per_s']:.1f} | "
            f"{r['image_b16_per_s']:.1f} | {r['text_per_s']:.1f} | {'yes' if r['reparameterized'] else '-'} |"
        )


def main() -> None:
    from clipforge.runtime.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=["none", "int8-dynamic"], choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    machine = describe()
    rows = measure(args.models, args.modes, args.repeats, args.threads)
    print(
        f"\n# {machine['model']}, {machine['cores']} cores, flags: {' '.join(machine['flags'])}; "
        f"medians of {args.repeats} rounds, onnxruntime, threads: {args.threads or 'all'}"
    )
    print_table(rows)
    report = {
        "machine": machine,
        "repeats": args.repeats,
        "threads": args.threads,
        "rows": [{"model": n, "build": MODES[m], **r} for (n, m), r in rows.items()],
    }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
