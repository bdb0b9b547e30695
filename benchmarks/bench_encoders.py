"""Encoder throughput side by side in one run, random-weight ViT-B/32-shaped CLIP:
PyTorch eager fp32 (transformers) vs clipforge fp32 (optimised build) vs clipforge int8 (dynamic and static).

Image encoder at batch 16; text encoder on 100 prompts (padded to the longest). Medians over repeats. GFLOP/s
is reported as a fraction of an fp32 matmul peak measured in this run (torch, 2048^3 sgemm).
    python benchmarks/bench_encoders.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json


from _common import WORK, b32_checkpoint, images, labels, timed

IMAGE_GFLOP = 8.8  # ViT-B/32 image tower, per image (NOTES.md)
TEXT_GFLOP_PER_TOKEN = 6.0 / 77


def matmul_peak(n: int = 2048) -> dict:
    """fp32 GEMM GFLOP/s measured now with torch and with onnxruntime (MLAS); the larger is the peak."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    a, b = torch.randn(n, n), torch.randn(n, n)
    t_torch, _ = timed(lambda: a @ b, repeats=7)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"a": a.numpy(), "b": b.numpy()}
    t_ort, _ = timed(lambda: session.run(None, feed), repeats=7)
    flops = 2 * n ** 3 / 1e9
    return {"torch": flops / t_torch, "onnxruntime": flops / t_ort, "peak": max(flops / t_torch, flops / t_ort)}


def torch_runs(folder, pixels, tokens):
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    p, ids, mask = (torch.from_numpy(x) for x in (pixels, tokens.input_ids, tokens.attention_mask))
    with torch.inference_mode():
        image = lambda: model.get_image_features(pixel_values=p).pooler_output  # noqa: E731
        text = lambda: model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output  # noqa: E731
        return image, text


def clipforge_runs(folder, pixels, tokens):
    from clipforge.runtime.model import ZeroShotModel

    model = ZeroShotModel.from_onnx(folder)
    return (lambda: model.encode_pixels(pixels)), (lambda: model.encode_tokens(tokens.input_ids, tokens.attention_mask))


def builds() -> dict:
    from clipforge.builder import build_composite

    ckpt = b32_checkpoint()
    return {mode: build_composite(ckpt, WORK / f"clip-b32-{mode}", quantize=mode, show_progress=False).path
            for mode in ("none", "int8-dynamic", "int8-static")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folders = builds()
    from clipforge.runtime.model import ZeroShotModel

    fp32 = ZeroShotModel.from_onnx(folders["none"])
    pixels = fp32.preprocess(images(16))
    prompts = [f"a photo of a {x}." for x in labels(100)]
    tokens = fp32.tokenizer.encode(prompts)
    flops = {"image": 16 * IMAGE_GFLOP, "text": float(tokens.attention_mask.sum()) * TEXT_GFLOP_PER_TOKEN}
    variants = {"pytorch-eager-fp32": torch_runs(b32_checkpoint(), pixels, tokens),
                "clipforge-fp32": clipforge_runs(folders["none"], pixels, tokens),
                "clipforge-int8-dynamic": clipforge_runs(folders["int8-dynamic"], pixels, tokens),
                "clipforge-int8-static": clipforge_runs(folders["int8-static"], pixels, tokens)}
    peaks = matmul_peak()
    peak = peaks["peak"]
    rows = {}
    for name, (image, text) in variants.items():
        image(), text()  # warm-up
        t_img, _ = timed(image, args.repeats)
        t_txt, _ = timed(text, args.repeats)
        rows[name] = {"image_per_s": 16 / t_img, "text_per_s": 100 / t_txt,
                      "image_gflops_frac_peak": flops["image"] / t_img / peak,
                      "text_gflops_frac_peak": flops["text"] / t_txt / peak}
    base = rows["pytorch-eager-fp32"]
    for r in rows.values():
        r["image_ratio_vs_torch"] = r["image_per_s"] / base["image_per_s"]
        r["text_ratio_vs_torch"] = r["text_per_s"] / base["text_per_s"]
    print(json.dumps({"matmul_gflops": peaks, "variants": rows}, indent=2))
    print(f"{'variant':26} {'img/s':>7} {'x torch':>7} {'%peak':>6} {'txt/s':>7} {'x torch':>7} {'%peak':>6}")
    for name, r in rows.items():
        print(f"{name:26} {r['image_per_s']:7.1f} {r['image_ratio_vs_torch']:7.2f} {100 * r['image_gflops_frac_peak']:6.1f} "
              f"{r['text_per_s']:7.1f} {r['text_ratio_vs_torch']:7.2f} {100 * r['text_gflops_frac_peak']:6.1f}")


if __name__ == "__main__":
    main()
