"""``export_model``: checkpoint -> image-encoder + text-encoder ONNX, validated, with a manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from clipforge._io import atomic_dir, check_output, file_hashes
from clipforge.errors import InputError, ValidationError
from clipforge.export.cases import NAFLEX_BUDGETS, image_cases, naflex_image_cases, text_cases
from clipforge.export.checkpoint import (
    Checkpoint,
    load_checkpoint,
    with_image_size,
    with_kept_case,
    with_text_mask,
)
from clipforge.export.manifest import make_manifest
from clipforge.export.onnx_export import export_encoder
from clipforge.export.runtime_check import check_runtime
from clipforge.export.support_files import save_support_files
from clipforge.export.validate import Tolerance, compare_encoder, raise_on_failures
from clipforge.options import ExportOptions
from clipforge.progress import steps
from clipforge.runtime.patches import with_max_patches
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE, Manifest


@dataclass
class ExportResult:
    path: Path
    manifest: Manifest
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Shapes:
    """Batch sizes and lengths used for the example inputs and the validation cases."""

    image_batches: list[int]
    text_batches: list[int]
    sequence_length: int | None  # fixed text length (static, SigLIP) or None (dynamic)
    image_size: tuple[int, int] | None  # non-native square size, or None


def _shapes(ckpt: Checkpoint, opts: ExportOptions) -> _Shapes:
    if ckpt.image.naflex and (opts.static or opts.image_size):
        raise InputError(
            f"{ckpt.source} is SigLIP 2 NaFlex (a patch budget per image, any aspect ratio): it exports with "
            f"dynamic shapes only; leave out {'static' if opts.static else 'image_size'} (set max_patches instead)"
        )
    size = (opts.image_size, opts.image_size) if opts.image_size else None
    if size == ckpt.image.output_size:
        size = None
    if opts.static:
        if (opts.sequence_length or 0) > ckpt.text.context_length:
            raise InputError(
                f"sequence_length {opts.sequence_length} is longer than {ckpt.source}'s text context "
                f"({ckpt.text.context_length} tokens); use at most {ckpt.text.context_length}"
            )
        length = min(opts.sequence_length or ckpt.family.static_sequence_length, ckpt.text.context_length)
        return _Shapes([opts.batch_size], [opts.batch_size], length, size)
    length = ckpt.text.context_length if ckpt.text.padding == "max_length" else None
    return _Shapes([1, 3, 4], [1, 3, 4], length, size)


def _reference(module):
    import torch

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
        with torch.no_grad():
            return module(*tensors.values()).numpy()

    return run


def _modules(ckpt: Checkpoint, shapes: _Shapes, model=None, reference: bool = False) -> dict:
    model = ckpt.model if model is None else model
    make = ckpt.family.reference_image_module if reference else ckpt.family.image_module
    image = make(model, interpolate=shapes.image_size is not None)
    return {IMAGE_ROLE: image, TEXT_ROLE: ckpt.family.text_module(model)}


def _image_cases(ckpt: Checkpoint, shapes: _Shapes) -> list[dict]:
    if ckpt.image.naflex:  # the validation budgets and the folder's own, mixed aspect ratios in each
        return naflex_image_cases(ckpt.processor, sorted({*NAFLEX_BUDGETS, ckpt.image.max_patches}))
    return image_cases(ckpt.processor, shapes.image_batches, shapes.image_size)


def _cases(ckpt: Checkpoint, shapes: _Shapes) -> dict[str, list[dict]]:
    return {
        IMAGE_ROLE: _image_cases(ckpt, shapes),
        TEXT_ROLE: text_cases(ckpt.tokenizer, ckpt.text, shapes.text_batches, shapes.sequence_length),
    }


def _export_and_validate(ckpt, shapes, opts, tmp: Path, step, folded=None) -> dict:
    """Export the inference-time form (``folded``, when the family folds anything), validate against
    ``ckpt.model`` itself."""
    import torch

    modules, cases, reports = _modules(ckpt, shapes, reference=True), _cases(ckpt, shapes), []
    exported = _modules(ckpt, shapes, folded)
    for encoder in ROLES:
        step(f"export {encoder}")
        io = ckpt.family.io(encoder)
        example = {k: torch.from_numpy(v) for k, v in cases[encoder][-1].items()}
        (tmp / encoder).mkdir()
        export_encoder(
            exported[encoder], example, io, tmp / encoder / "model.onnx", opset=opts.opset, static=opts.static
        )
    if not opts.validate:
        return {}
    for encoder in ROLES:
        step(f"validate {encoder}")
        reference = _reference(modules[encoder])
        tol = Tolerance(opts.atol, opts.min_cosine)
        reports.append(
            compare_encoder(
                tmp / encoder / "model.onnx", encoder, ckpt.family.io(encoder), reference, cases[encoder], tol
            )
        )
    raise_on_failures("export", reports)
    return {r.encoder: r.as_dict() for r in reports} | {"atol": opts.atol, "min_cosine": opts.min_cosine}


def export_model(
    model: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    *,
    revision: str | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> ExportResult:
    """Export ``model`` (hub id or checkpoint folder) to ``output``, validated against PyTorch."""
    opts = (options or ExportOptions()).check()
    out = Path(output)
    check_output(out, force)
    timings: dict[str, float] = {}
    with steps(show_progress, total=2 * len(ROLES) + 3) as step:
        step("load checkpoint")
        start = time.perf_counter()
        ckpt = load_checkpoint(model, revision)
        if opts.text_attention_mask:
            ckpt = with_text_mask(ckpt)
        if opts.keep_case:
            ckpt = with_kept_case(ckpt)
        if opts.max_patches:
            ckpt = replace(ckpt, image=with_max_patches(ckpt.image, opts.max_patches))
        shapes = _shapes(ckpt, opts)
        folded, folding = ckpt.family.inference_form(ckpt.model)
        with atomic_dir(out, force) as tmp:
            validation = _export_and_validate(ckpt, shapes, opts, tmp, step, folded if folding else None)
            step("write manifest")
            manifest = _write_folder(ckpt, shapes, opts, validation, tmp, folding)
            step("check runtime")
            _check_runtime(ckpt, shapes, manifest, tmp)
        timings["total"] = time.perf_counter() - start
    return ExportResult(out, manifest, timings)


def _check_runtime(ckpt, shapes: _Shapes, manifest: Manifest, tmp: Path) -> None:
    """The folder as the torch-free runtime reads it must tokenize and pre-process as the reference does; any
    difference fails the export (the temporary folder is removed: nothing is left behind)."""
    image = None if shapes.image_size else manifest.image  # no reference processor at an interpolated size
    failures = check_runtime(tmp, ckpt.tokenizer, ckpt.processor, manifest.text, image)
    if failures:
        raise ValidationError("export", failures)


def _write_folder(ckpt, shapes, opts, validation, tmp: Path, folding: dict) -> Manifest:

    save_support_files(ckpt, tmp)
    image = with_image_size(ckpt.image, shapes.image_size[0] if shapes.image_size else None)
    manifest = make_manifest(ckpt, image, opts, validation, shapes.sequence_length)
    for encoder, record in folding.items():  # what was folded before export (re-parameterisation)
        manifest.towers[encoder] = {**manifest.towers[encoder], **record}
    manifest.files = file_hashes(tmp)
    (tmp / "manifest.json").write_text(manifest.to_json())
    return manifest
