"""Evaluation reports: JSON for machines, markdown tables (one row per model, like the seeds' results table,
plus per-class accuracy) and a rich table for the terminal."""

from __future__ import annotations

import math
from pathlib import Path

from clipforge import output
from clipforge._io import atomic_file

PER_CLASS_ROWS = 100  # above this many classes the markdown lists the weakest ones only


def _fmt(value, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _classification_row(r: dict) -> str:
    onnx, base, delta = r["onnx"], r.get("baseline") or {}, r.get("delta") or {}
    return (
        f"| {r['model']} | {r['dataset']}:{r['split']} | {onnx['evaluated']} | {r['templates']} "
        f"({r['template_count']}) | {_fmt(base.get('top1'))} | {_fmt(onnx['top1'])} | "
        f"{_fmt(delta.get('top1'), True)} | {_fmt(base.get('top5'))} | {_fmt(onnx['top5'])} | "
        f"{_fmt(delta.get('top5'), True)} | {_fmt(onnx['mean_per_class_recall'])} | {onnx['unreadable']} |"
    )


def _retrieval_row(r: dict) -> str:
    o = r["onnx"]
    i2t, t2i = o["image_to_text"], o["text_to_image"]
    cells = [_fmt(i2t[k]) for k in ("R@1", "R@5", "R@10")] + [_fmt(t2i[k]) for k in ("R@1", "R@5", "R@10")]
    return (
        f"| {r['model']} | {r['dataset']}:{r['split']} | {o['images']} | {o['captions']} | "
        + " | ".join(cells)
        + f" | {o['unreadable']} |"
    )


HEADERS = {
    "zero-shot-image-classification": (
        "| Model | Dataset | Samples | Templates | HF baseline (fp32, CPU) top-1 | ONNX top-1 | Δ top-1 | "
        "HF baseline top-5 | ONNX top-5 | Δ top-5 | ONNX mean per-class recall | Unreadable |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _classification_row,
    ),
    "zero-shot-retrieval": (
        "| Model | Dataset | Images | Captions | I→T R@1 | I→T R@5 | I→T R@10 | T→I R@1 | T→I R@5 | T→I R@10 | "
        "Unreadable |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        _retrieval_row,
    ),
}


def markdown(reports: dict | list[dict]) -> str:
    """One table row per report (all of one task); a single classification report adds per-class accuracy."""
    reports = [reports] if isinstance(reports, dict) else list(reports)
    header, rule, row = HEADERS[reports[0]["task"]]
    lines = [f"## {reports[0]['task']}", "", header, rule, *(row(r) for r in reports), ""]
    if len(reports) == 1 and reports[0]["task"] == "zero-shot-image-classification":
        lines += _per_class(reports[0])
    return "\n".join(lines) + "\n"


def _per_class(report: dict) -> list[str]:
    onnx, base = report["onnx"]["per_class"], (report.get("baseline") or {}).get("per_class", {})
    names = sorted(onnx, key=lambda n: (onnx[n], n))
    title = "Per-class accuracy (top-1, %)"
    if len(names) > PER_CLASS_ROWS:
        names, title = names[:20], f"Per-class accuracy (top-1, %), the 20 weakest of {len(names)} classes"
    lines = [f"### {title}", "", "| Class | ONNX | HF baseline |", "|---|---:|---:|"]
    lines += [f"| {n} | {_fmt(onnx[n])} | {_fmt(base.get(n))} |" for n in names]
    return lines + [""]


def write_json(path: Path | str, report) -> None:
    """``path`` ``-``: print on stdout."""
    output.write_json(path, report)


def write_markdown(path: Path, report) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(markdown(report))


def print_report(report: dict) -> None:
    """The report as a table on stdout; unreadable images as one line on stderr."""
    if report["task"] == "zero-shot-retrieval":
        output.show(_retrieval_table(report))
    else:
        output.show(_classification_table(report))
        if report.get("agreement") is not None:
            output.say(f"top-1 predictions equal to PyTorch's on {_fmt(report['agreement'])}% of images", stderr=False)
    warn_unreadable(report)


def warn_unreadable(report: dict) -> None:
    failures = report["onnx"]["failures"]
    if failures:
        output.say(
            f"{len(failures)} unreadable image(s) skipped, e.g. {failures[0]['image']}: {failures[0]['error']}",
            style="yellow",
        )


CLASSIFICATION = ("model", "top-1", "top-5", "mean recall", "images", "unreadable", "images/s")
RETRIEVAL = ("direction", "R@1", "R@5", "R@10")


def _classification_table(report: dict):
    table = output.table(
        f"{report['task']} on {report['source']} ({report['classes']} classes, {report['template_count']} template(s))",
        CLASSIFICATION,
        numeric=CLASSIFICATION[1:],
    )
    for name, label in (("onnx", "clipforge ONNX"), ("baseline", "PyTorch (transformers)")):
        if r := report.get(name):
            table.add_row(
                label,
                _fmt(r["top1"]),
                _fmt(r["top5"]),
                _fmt(r["mean_per_class_recall"]),
                str(r["evaluated"]),
                str(r["unreadable"]),
                f"{r['images_per_s']:.1f}",
            )
    if d := report.get("delta"):
        table.add_row(
            "Δ (ONNX − PyTorch)",
            _fmt(d["top1"], True),
            _fmt(d["top5"], True),
            _fmt(d["mean_per_class_recall"], True),
            "",
            "",
            "",
        )
    return table


def _retrieval_table(report: dict):
    o = report["onnx"]
    table = output.table(
        f"zero-shot retrieval on {report['source']} ({o['images']} images, {o['captions']} captions)",
        RETRIEVAL,
        numeric=RETRIEVAL[1:],
    )
    for key, label in (("image_to_text", "image → text"), ("text_to_image", "text → image")):
        table.add_row(label, *(_fmt(o[key][k]) for k in ("R@1", "R@5", "R@10")))
    return table
