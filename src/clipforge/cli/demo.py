"""``clipforge demo``: the whole workflow offline on a model trained here in about a minute.

Generates the coloured-shapes set, trains a tiny CLIP on it, exports it (validated vs PyTorch), builds an int8
version calibrated on real images, evaluates both and classifies a few test images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path("clipforge-demo")) -> None:
    """Train -> export -> build int8 -> eval -> classify, offline."""
    from clipforge.build import build_composite
    from clipforge.evaluation.classify_eval import evaluate_classification
    from clipforge.evaluation.datasets import load_eval_data
    from clipforge.export import ExportOptions, export_model
    from clipforge.progress import quiet_transformers
    from clipforge.runtime.model import ZeroShotModel
    from clipforge.testing.shapes import shapes_dataset
    from clipforge.testing.trained import trained_checkpoint

    console = Console(stderr=True)
    console.print("1/5 data + tiny CLIP trained on coloured shapes (cached after the first run)")
    with quiet_transformers():
        data, checkpoint = shapes_dataset(out / "fixtures"), trained_checkpoint("clip", out / "fixtures")
    console.print("2/5 export fp32 (validated against PyTorch)")
    fp32 = export_model(checkpoint, out / "clip-fp32", ExportOptions(force=True)).path
    console.print("3/5 build int8-static, calibrated on the train split")
    int8 = build_composite(checkpoint, out / "clip-int8", quantize="int8-static",
                           calibration_data=data.folder("train")).path
    console.print("4/5 zero-shot eval on the test split")
    test = load_eval_data(str(data.root), "test")
    for name, folder in (("fp32", fp32), ("int8-static", int8)):
        r = evaluate_classification(ZeroShotModel.from_onnx(folder), test, ["a photo of a {}."], show=False)
        print(f"{name:12} top-1 {r['top1']:.1f}%  top-5 {r['top5']:.1f}%  ({r['evaluated']} images, "
              f"{len(data.class_names)} classes)")
    console.print("5/5 classify three test images with the int8 build")
    model = ZeroShotModel.from_onnx(int8)
    images = [sorted((data.folder("test") / c).iterdir())[0] for c in data.class_names[:3]]
    for image, preds in zip(images, model.classify(images, data.class_names, "a photo of a {}.", top_k=2)):
        shown = ", ".join(f"{p['label']} {p['score']:.2f}" for p in preds)
        print(f"{image.parent.name:>16}/{image.name}: {shown}")
    console.print(f"[green]done[/]: builds in {out}; try 'clipforge classify {images[0]} -m {int8} "
                  f"-l \"red circle,blue square\"'")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
