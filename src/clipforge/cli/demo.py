"""``clipforge demo``: the whole workflow offline on a model trained here in about a minute.

Generates the coloured-shapes set, trains a tiny CLIP on it, exports it (validated vs PyTorch), builds an int8
version calibrated on real images, evaluates both, classifies a few test images, and exports the int8 build as
pipeline graphs (pre-processing and tokenizer inside) that classify the same images with onnxruntime alone."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipforge.builder import build_composite
from clipforge.data.labelled import load_eval_data
from clipforge.evaluation.classify_eval import evaluate_classification
from clipforge.export import export_model
from clipforge.pipeline import PipelineModel, export_pipeline
from clipforge.progress import quiet_transformers
from clipforge.runtime.model import ZeroShotModel
from clipforge.testing.shapes import shapes_dataset
from clipforge.testing.trained import EVAL_TEMPLATE, trained_checkpoint


def demo(out: Annotated[Path, typer.Option("--out", "-o", help="Working folder.")] = Path("clipforge-demo")) -> None:
    """Train -> export -> build int8 -> eval -> classify, offline."""

    console = Console(stderr=True, soft_wrap=True)  # step lines never break, also at 80 columns in a pipe
    console.print("1/6 data + tiny CLIP trained on coloured shapes (cached after the first run)")
    with quiet_transformers():
        data, checkpoint = shapes_dataset(out / "fixtures"), trained_checkpoint("clip", out / "fixtures")
    console.print("2/6 export fp32 (validated against PyTorch)")
    fp32 = export_model(checkpoint, out / "clip-fp32", force=True).path
    console.print("3/6 build int8-static, calibrated on the train split")
    int8 = build_composite(
        checkpoint, out / "clip-int8", quantize="int8-static", calibration_data=data.folder("train")
    ).path
    console.print("4/6 zero-shot eval on the test split")
    test = load_eval_data(str(data.root), "test")
    for name, folder in (("fp32", fp32), ("int8-static", int8)):
        r = evaluate_classification(ZeroShotModel.from_onnx(folder), test, [EVAL_TEMPLATE], show=False)
        print(
            f"{name:12} top-1 {r['top1']:.1f}%  top-5 {r['top5']:.1f}%  ({r['evaluated']} images, "
            f"{len(data.class_names)} classes)"
        )
    console.print("5/6 classify three test images with the int8 build")
    model = ZeroShotModel.from_onnx(int8)
    images = [sorted((data.folder("test") / c).iterdir())[0] for c in data.class_names[:3]]
    for image, preds in zip(images, model.classify(images, data.class_names, EVAL_TEMPLATE, top_k=2)):
        shown = ", ".join(f"{p['label']} {p['score']:.2f}" for p in preds)
        print(f"{image.parent.name:>16}/{image.name}: {shown}")
    prefix = _pipeline_step(int8, out, images, data.class_names, console)
    image, int8_arg, prefix_arg = (shlex.quote(str(p)) for p in (images[0], int8, prefix))
    console.print(
        f"[green]done[/]: builds in {out}; try\n  clipforge classify {image} -m {int8_arg} "
        f"-l 'red circle,blue square'\n  python examples/pipeline_minimal.py {prefix_arg} {image} "
        "'red circle' 'blue square'",
        soft_wrap=True,
    )


def _pipeline_step(build: Path, out: Path, images: list[Path], labels: list[str], console) -> Path:
    """Export ``build`` as pipeline graphs and classify ``images`` with them: raw bytes and strings in."""

    console.print("6/6 single-file pipeline graphs of the int8 build: PNG bytes / strings in, embeddings out")
    prefix = out / "pipeline" / "clip-int8"
    export_pipeline(build, prefix, force=True, show_progress=False)  # the family's preset
    pipeline = PipelineModel.from_prefix(prefix)
    for image in images:
        best = pipeline.classify(image, labels, EVAL_TEMPLATE, top_k=1)[0]["label"]
        print(f"{image.parent.name:>16}/{image.name}: {best} (onnxruntime + extensions only)")
    return prefix


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
