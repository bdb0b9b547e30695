"""``build``: checkpoint -> fp32 export -> per-encoder stages -> a folder the runtime loads (export's layout +
``build.json``). Everything happens in a temporary sibling folder renamed at the end; unchanged inputs and
config are skipped (content-hash cache)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from clipforge._io import atomic_dir, file_hashes, sweep
from clipforge.builder.auto import choose_auto
from clipforge.builder.build_config import RUNTIME_PRECISION, BuildConfig
from clipforge.builder.calibration import load_calibration
from clipforge.builder.parity import Probe, make_probe
from clipforge.builder.roles import build_role, kill_point
from clipforge.builder.timing import InferenceTimer, Timer
from clipforge.errors import InputError, OutputExistsError
from clipforge.export.cache import cached_export
from clipforge.folders import cache_key
from clipforge.options import BUILD_OVERRIDES, ExportOptions
from clipforge.progress import steps
from clipforge.runtime.backends import check_backend
from clipforge.runtime.cpu import describe, relied_on, require_bf16
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.sessions import providers_for
from clipforge.specs import Manifest


@dataclass
class BuildContext:
    config: BuildConfig
    fp32_folder: Path  # the validated fp32 export (in the resolver's cache: shared with from_pretrained)
    fp32: ZeroShotModel
    probe: Probe
    work: Path
    timer: Timer  # (graph path, encoder) -> inference seconds per run; decides fused-or-not and auto's choice


@dataclass
class BuildResult:
    path: Path
    manifest: Manifest
    report: dict = field(default_factory=dict)
    skipped: bool = False


def apply_overrides(config: BuildConfig, overrides: dict) -> BuildConfig:
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in BUILD_OVERRIDES:
            raise InputError(f"unknown build option {key!r}; valid: {', '.join(BUILD_OVERRIDES)}")
        section, attr = BUILD_OVERRIDES[key]
        setattr(getattr(config, section), attr, value)
    return config.validate()


def _key(model, revision, config: BuildConfig, calibration) -> str:
    data = {"config": config.to_dict()}
    if calibration and Path(calibration).exists():
        stat = Path(calibration).stat()
        data["calibration"] = [str(Path(calibration).resolve()), stat.st_size, int(stat.st_mtime)]
    elif calibration:  # a dataset id, or a missing path that load_calibration reports in one line
        data["calibration"] = str(calibration)
    return cache_key(str(model), revision, data)


def _up_to_date(out: Path, key: str) -> Manifest | None:
    if not (out / "manifest.json").is_file():
        return None
    manifest = Manifest.load(out)
    return manifest if manifest.build.get("cache_key") == key else None


def build_composite(
    model,
    output,
    config: BuildConfig | None = None,
    *,
    calibration_data=None,
    revision: str | None = None,
    force: bool = False,
    show_progress: bool = True,
    timer: Timer | None = None,
    **overrides,
) -> BuildResult:
    """Build ``model`` into ``output``; returns without work when the same inputs were built there before.
    ``timer`` replaces the inference timing behind the keep-fused and ``auto`` decisions (tests inject one)."""

    config = apply_overrides(config or BuildConfig(), overrides)
    providers_for(config.compile.ep)  # an EP this onnxruntime lacks fails before any work
    _check_machine(config)
    out = Path(output)
    key = _key(model, revision, config, calibration_data)
    sweep(out.parent, out.name)  # killed builds' temporary folders, also when this run has nothing to do
    if (done := _up_to_date(out, key)) is not None:
        return BuildResult(out, done, done.build, skipped=True)
    if out.exists() and not force and not (out / "manifest.json").is_file():
        raise OutputExistsError(f"output {out} exists and is not a clipforge build; pass force=True to replace it")
    with steps(show_progress, total=2 + 3 * len(config.roles)) as step, atomic_dir(out, force=True) as tmp:
        ctx = _prepare(model, revision, config, calibration_data, tmp, step, timer)
        report = _build_roles(ctx, tmp, step)
        step("write manifest")
        manifest = _finish(ctx, tmp, report, key)
    return BuildResult(out, manifest, manifest.build)


def _check_machine(config: BuildConfig) -> None:
    """A precision this CPU or install cannot run fails up front, in one line."""
    if config.quantize.mode == "bf16":
        require_bf16()
        check_backend("openvino")


def _runtime_record(report: dict) -> dict:
    """encoder -> the backend/precision the runtime applies (modes whose graph stays fp32, e.g. bf16)."""
    modes = {encoder: info["quantize"] for encoder, info in report["roles"].items()}
    return {encoder: RUNTIME_PRECISION[mode] for encoder, mode in modes.items() if mode in RUNTIME_PRECISION}


def _prepare(model, revision, config, calibration_data, tmp: Path, step, timer) -> BuildContext:
    step("export fp32")
    kill_point("export")
    fp32_folder = cached_export(model, revision=revision, options=_export_options(config.export), show_progress=False)
    step("calibration data")
    kill_point("calibrate")
    fp32 = ZeroShotModel.from_onnx(fp32_folder)
    if fp32.manifest.build.get("config"):
        raise InputError(
            f"{model} is a build (quantize {fp32.manifest.build['config']['quantize']['mode']}); "
            "build from the checkpoint or an fp32 export, not from another build"
        )
    calib = load_calibration(calibration_data, config.quantize.calibration_samples)
    probe = make_probe(fp32, calib)
    return BuildContext(config, fp32_folder, fp32, probe, tmp / "_work", timer or InferenceTimer(probe))


def _export_options(export: ExportOptions) -> dict:
    """The export section's non-default values: a plain build shares the cached export of ``from_pretrained``."""
    default = ExportOptions()
    return {k: v for k, v in dataclasses.asdict(export).items() if getattr(default, k) != v}


def _build_roles(ctx: BuildContext, tmp: Path, step) -> dict:
    report = {"roles": {}, "calibration": ctx.probe.calibration.source}
    if ctx.config.quantize.mode == "auto":
        step("auto: try candidates")
        report["auto"] = choose_auto(ctx, tmp)
        report["runtime"] = {
            r: rt
            for r, rt in report["auto"]["runtime"].items()
            if (rt["backend"], rt["precision"]) != ("onnxruntime", "fp32")
        }
        for encoder in ctx.config.roles:
            report["roles"][encoder] = report["auto"]["chosen_stages"][encoder]
        return report
    for encoder in ctx.config.roles:
        step(f"build {encoder}")
        start = time.perf_counter()
        (tmp / encoder).mkdir(exist_ok=True)
        records = build_role(encoder, ctx.config.quantize.mode, tmp / encoder / "model.onnx", ctx)
        report["roles"][encoder] = {
            "quantize": ctx.config.quantize.mode,
            "stages": records,
            "seconds": round(time.perf_counter() - start, 2),
        }
    return report


def _finish(ctx: BuildContext, tmp: Path, report: dict, key: str) -> Manifest:
    for item in ctx.fp32_folder.iterdir():  # tokenizer / processor files
        if item.is_file() and item.name != "manifest.json":
            shutil.copy2(item, tmp / item.name)
    manifest = ctx.fp32.manifest
    single = len(ctx.config.roles) == 1
    if single:  # a one-encoder build: OUT/model.onnx
        encoder = ctx.config.roles[0]
        for item in (tmp / encoder).iterdir():  # model.onnx and its saved optimised graph
            item.rename(tmp / item.name)
        (tmp / encoder).rmdir()
        manifest.encoders = {encoder: "model.onnx"}
    shutil.rmtree(ctx.work, ignore_errors=True)

    runtime = report["runtime"] if "runtime" in report else _runtime_record(report)
    precisions = {i["precision"] for i in runtime.values()} | {
        "int8" for i in report["roles"].values() if i["quantize"].startswith("int8")
    }
    manifest.build = {
        **manifest.build,
        "cache_key": key,
        "config": ctx.config.to_dict(),
        **report,
        "runtime": runtime,
        "cpu": {**describe(), "relied_on": relied_on(precisions)},
    }
    (tmp / "build.json").write_text(json.dumps(manifest.build, indent=2))
    manifest.files = file_hashes(tmp)
    (tmp / "manifest.json").write_text(manifest.to_json())
    return manifest
