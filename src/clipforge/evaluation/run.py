"""One evaluation request: check it, load the data and the model(s), run, and assemble the report dict that
``reports`` prints and writes. Cheap checks (task, baseline, templates, data) run before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clipforge.data.labelled import load_eval_data
from clipforge.errors import InputError, require
from clipforge.evaluation.baseline_torch import evaluate_torch
from clipforge.evaluation.classify_eval import evaluate_classification
from clipforge.evaluation.retrieval import evaluate_retrieval
from clipforge.evaluation.retrieval_data import load_retrieval_data
from clipforge.evaluation.scores import agreement
from clipforge.models import open_model
from clipforge.runtime.model import ZeroShotModel
from clipforge.zeroshot.templates import get_templates

CLASSIFICATION = "zero-shot-image-classification"
RETRIEVAL = "zero-shot-retrieval"
TASKS = (CLASSIFICATION, RETRIEVAL)
BASELINES = ("torch",)


@dataclass
class EvalRequest:
    models: object  # an exported/built folder, or {encoder: model.onnx}
    dataset: str
    task: str = CLASSIFICATION
    split: str = "test"
    samples: int | None = None
    columns: dict = field(default_factory=dict)
    class_names: list[str] | None = None
    templates: str = "default"
    model_id: str | None = None
    baseline: str | None = None
    device: str = "cpu"
    batch_size: int = 32
    seed: int = 0
    manifest: str | None = None
    threads: int | None = None
    show: bool = True

    def check(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"task={self.task!r} is not supported; choose one of: {', '.join(TASKS)}")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise InputError(f"baseline={self.baseline!r} is not supported; choose one of: {', '.join(BASELINES)}")
        if self.baseline and not self.model_id:
            raise InputError("baseline='torch' needs model_id= (the checkpoint the ONNX encoders came from)")
        if self.baseline and self.task != CLASSIFICATION:
            raise InputError(f"baseline= is available for {CLASSIFICATION} only")
        if self.batch_size < 1:
            raise InputError(f"batch_size= must be at least 1, got {self.batch_size}")


def _header(req: EvalRequest, source: str, split_size: int, model) -> dict:
    return {
        "task": req.task,
        "dataset": req.dataset,
        "split": req.split,
        "source": source,
        "split_size": split_size,
        "model": str(req.model_id or _model_name(req.models)),
        "family": model.manifest.family,
        "device": req.device,
        "seed": req.seed,
    }


def _model_name(models) -> str:
    return str(models) if not isinstance(models, dict) else ", ".join(f"{r}={p}" for r, p in models.items())


def _load_model(req: EvalRequest):
    models = req.models
    if isinstance(models, (str, Path)) and req.manifest is None:  # a hub id or checkpoint: its cached export
        return open_model(models, device=req.device, threads=req.threads)
    return ZeroShotModel.from_onnx(models, manifest=req.manifest, device=req.device, threads=req.threads)


def run_eval(req: EvalRequest) -> dict:
    req.check()
    if req.task == RETRIEVAL:
        return _run_retrieval(req)

    templates = get_templates(req.templates)
    if req.baseline:
        require("torch", "export"), require("transformers", "export")
    data = load_eval_data(req.dataset, req.split, req.samples, req.columns, req.class_names, req.seed)
    model = _load_model(req)
    report = _header(req, data.source, data.split_size, model)
    report.update(
        {
            "templates": req.templates,
            "template_count": len(templates),
            "classes": len(data.class_names),
            "class_names": data.class_names,
        }
    )
    report["onnx"] = evaluate_classification(model, data, templates, req.batch_size, req.show)
    if req.baseline == "torch":
        base = report["baseline"] = evaluate_torch(
            req.model_id,
            data,
            templates,
            req.batch_size,
            req.show,
            text_attention_mask=model.manifest.text.uses_attention_mask,
            keep_case=not model.manifest.text.lowercase_texts,
        )
        onnx = report["onnx"]
        report["delta"] = {k: onnx[k] - base[k] for k in ("top1", "top5", "mean_per_class_recall")}
        report["delta_top1"] = report["delta"]["top1"]
        same_rows = [f["index"] for f in onnx["failures"]] == [f["index"] for f in base["failures"]]
        report["agreement"] = agreement(onnx["predictions"], base["predictions"]) if same_rows else float("nan")
    return report


def _run_retrieval(req: EvalRequest) -> dict:

    data = load_retrieval_data(req.dataset, req.split, req.samples, req.columns, req.seed)
    model = _load_model(req)
    report = _header(req, data.source, data.split_size, model)
    report["onnx"] = evaluate_retrieval(model, data, req.batch_size, req.show)
    return report
