"""MobileCLIP image encoders, folded (re-parameterised, as ``clipforge export`` writes them) vs unfolded (the
train-time graph), side by side in one run: onnxruntime img/s at batch 1 and 16, medians of repeats, the two
graphs timed alternately. Random weights (``pretrained=None``) at the real sizes, with random BatchNorm statistics
and layer scales (``tiny_fastvit.randomize_train_state``) so the folded and unfolded outputs differ where a fold
rounds; speed does not depend on the weights' values.

    python benchmarks/bench_reparam.py [--archs MobileCLIP-S1 MobileCLIP2-S0] [--repeats 7] [--threads N]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from _common import WORK


def export_pair(arch: str) -> dict:
    """Both image graphs of ``arch`` and their node counts (without Identity/Constant nodes: the exporter adds an
    Identity per duplicate weight, so their number depends on the weights' values)."""
    import onnx
    import torch

    from clipforge.export.onnx_export import export_encoder
    from clipforge.families.openclip_io import wrap_model
    from clipforge.families.reparameterize import fold
    from clipforge.registry import get_family
    from clipforge.testing.tiny_fastvit import randomize_train_state
    from clipforge.testing.tiny_openclip import model_config, random_model

    family = get_family("openclip")
    inner = random_model(model_config("mobileclip", shape="base", arch=arch))
    randomize_train_state(inner)
    model = wrap_model(inner)
    size = model.inner.visual.image_size
    example = {"pixel_values": torch.randn(2, 3, *size)}
    out = {"image_size": list(size)}
    for name, form in (("unfolded", model), ("folded", fold(model))):
        path = WORK / f"reparam-{arch}" / name / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        export_encoder(family.image_module(form), example, family.io("image-encoder"), path, opset=17, static=False)
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        nodes = sum(op not in ("Identity", "Constant") for op in ops)  # the exporter's Identity/Constant vary
        out[name] = {"path": str(path), "nodes": nodes, "export_s": round(time.perf_counter() - start, 1)}
    return out


def measure(graphs: dict, size: list[int], batches, repeats: int, threads: int | None) -> dict:
    """img/s per graph and batch; the graphs run alternately within each repeat so load hits both alike."""
    from clipforge.runtime.sessions import SessionConfig, make_session

    sessions = {name: make_session(g["path"], SessionConfig(threads=threads)) for name, g in graphs.items()}
    rng = np.random.default_rng(0)
    result = {}
    for batch in batches:
        feed = {"pixel_values": rng.standard_normal((batch, 3, *size)).astype(np.float32)}
        outs = {name: s.run(None, feed)[0] for name, s in sessions.items()}  # warm-up, and the agreement check
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(repeats):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(None, feed)
                times[name].append(time.perf_counter() - start)
        result[batch] = {name: batch / statistics.median(t) for name, t in times.items()}
        diff = np.abs(outs["folded"] - outs["unfolded"]).max() / np.abs(outs["unfolded"]).max()
        result[batch]["max_rel_diff"] = float(diff)  # largest difference / largest output
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["MobileCLIP-S1", "MobileCLIP2-S0"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from clipforge.runtime.cpu import describe

    machine = describe()
    report = {"machine": machine, "repeats": args.repeats, "threads": args.threads, "archs": {}}
    print(
        f"# {machine['model']}, {machine['cores']} cores, flags: {' '.join(machine['flags'])}; repeats: {args.repeats}"
    )
    print(
        "| image encoder | compute nodes unfolded → folded | batch | unfolded img/s | folded img/s | speed-up "
        "| max diff / max output |"
    )
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs:
        graphs = export_pair(arch)
        size = graphs.pop("image_size")
        speeds = measure(graphs, size, args.batches, args.repeats, args.threads)
        report["archs"][arch] = {"graphs": graphs, "img_per_s": speeds}
        nodes = f"{graphs['unfolded']['nodes']} → {graphs['folded']['nodes']}"
        for batch, row in speeds.items():
            print(
                f"| {arch} {size[0]}px | {nodes} | {batch} | {row['unfolded']:.1f} | {row['folded']:.1f} "
                f"| {row['folded'] / row['unfolded']:.2f}× | {row['max_rel_diff']:.1e} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
