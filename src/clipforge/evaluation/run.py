"""One evaluation request: load data and model(s), run, assemble the report dict."""

from __future__ import annotations

from dataclasses import dataclass

from clipforge.errors import InputError


@dataclass
class EvalRequest:
    models: object  # folder path or {role: path}
    dataset: str
    task: str
    split: str
    samples: int | None
    columns: dict
    class_names: list[str] | None
    templates: str
    model_id: str | None
    baseline: str | None
    device: str
    batch_size: int


def run_eval(req: EvalRequest) -> dict:
    from clipforge.runtime.model import ZeroShotModel
    from clipforge.zeroshot.templates import get_templates

    model = ZeroShotModel.from_onnx(req.models, device=req.device)
    report = {"task": req.task, "dataset": f"{req.dataset}:{req.split}", "model": str(req.model_id or req.models)}
    if req.task == "zero-shot-retrieval":
        from clipforge.evaluation.retrieval import evaluate_retrieval
        from clipforge.evaluation.retrieval_data import load_retrieval_data

        images, captions = load_retrieval_data(req.dataset, req.split, req.samples, req.columns)
        report["onnx"] = evaluate_retrieval(model, images, captions, req.batch_size)
        return report
    from clipforge.evaluation.classify_eval import evaluate_classification
    from clipforge.evaluation.datasets import load_eval_data

    templates = get_templates(req.templates)
    data = load_eval_data(req.dataset, req.split, req.samples, req.columns, req.class_names)
    report["templates"] = req.templates
    report["onnx"] = evaluate_classification(model, data, templates, req.batch_size)
    if req.baseline == "torch":
        if not req.model_id:
            raise InputError("--baseline torch needs --model-id (the checkpoint the ONNX model came from)")
        from clipforge.evaluation.baseline_torch import evaluate_torch

        report["baseline"] = evaluate_torch(req.model_id, data, templates, req.batch_size)
        report["delta_top1"] = report["onnx"]["top1"] - report["baseline"]["top1"]
    return report
