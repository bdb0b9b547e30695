"""Build configs: one dataclass per section, JSON round-trip, validation that names the bad key."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipforge.errors import InputError
from clipforge.options import ExportOptions
from clipforge.specs import IMAGE_ROLE, ROLES, TEXT_ROLE

QUANTIZE_MODES = ("none", "int8-dynamic", "int8-static", "fp16", "bf16", "auto")
# Modes whose graph stays fp32 and whose precision is applied by a backend at run time (recorded in build.json).
RUNTIME_PRECISION = {"bf16": {"backend": "openvino", "precision": "bf16"}}
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
EPS = ("cpu", "cuda", "tensorrt", "openvino", "qnn", "dml", "coreml")
OPT_LEVELS = ("disabled", "basic", "extended", "all")
TASK_ROLES = {
    "zero-shot-image-classification": ROLES,
    "image-feature-extraction": (IMAGE_ROLE,),
    "feature-extraction": (TEXT_ROLE,),
}


def _choice(section: str, key: str, value, allowed) -> None:
    if value not in allowed:
        raise InputError(f"{section}.{key} = {value!r} is not valid; allowed: {', '.join(map(str, allowed))}")


@dataclass
class OptimizeSection:
    """ORT transformer fusions; a fused graph is kept only if it validates and is not slower."""

    enabled: bool = True
    attention: bool = True
    layer_norm: bool = True
    gelu: bool = True
    bias: bool = True

    def check(self) -> None:
        return None


@dataclass
class QuantizeSection:
    mode: str = "none"
    calibration_samples: int = 64
    method: str = "minmax"
    per_channel: bool = True
    # 7-bit weights: onnxruntime's u8 x s8 int8 kernels saturate on x86 CPUs without VNNI/AMX (AVX2, AVX-512F);
    # "auto" reduces the range when the building CPU is one of those (runtime/cpu.py int8_saturates)
    reduce_range: bool | str = "auto"
    op_types: list[str] = field(default_factory=lambda: ["MatMul"])
    # int8-static on a ResNet image encoder (open_clip's ModifiedResNet) also quantises its Conv layers (QDQ ->
    # QLinearConv); see benchmarks/bench_openclip.py for the measurement behind the default
    resnet_convs: bool = True
    exclude_nodes: list[str] = field(default_factory=list)
    keep_projection_float: bool = True  # the final projection MatMul stays float32
    max_accuracy_drop: float = 1.0  # percentage points, for mode "auto"

    def check(self) -> None:
        _choice("quantize", "mode", self.mode, QUANTIZE_MODES)
        _choice("quantize", "method", self.method, CALIBRATION_METHODS)
        _choice("quantize", "reduce_range", self.reduce_range, ("auto", True, False))
        if self.calibration_samples < 1:
            raise InputError("quantize.calibration_samples must be at least 1")
        if self.max_accuracy_drop < 0:
            raise InputError("quantize.max_accuracy_drop must be >= 0 (percentage points)")


@dataclass
class CompileSection:
    ep: str = "cpu"
    optimization_level: str = "all"
    # also save onnxruntime's optimised graph beside each encoder: sessions on this kind of machine (same
    # onnxruntime, EP, CPU flags) skip optimisation; elsewhere the portable model.onnx is used
    save_optimized: bool = True

    def check(self) -> None:
        _choice("compile", "ep", self.ep, EPS)
        _choice("compile", "optimization_level", self.optimization_level, OPT_LEVELS)


SECTIONS = {
    "export": ExportOptions,
    "optimize": OptimizeSection,
    "quantize": QuantizeSection,
    "compile": CompileSection,
}


@dataclass
class BuildConfig:
    task: str = "zero-shot-image-classification"
    roles: list[str] = field(default_factory=lambda: list(ROLES))
    export: ExportOptions = field(default_factory=ExportOptions)
    optimize: OptimizeSection = field(default_factory=OptimizeSection)
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    compile: CompileSection = field(default_factory=CompileSection)

    def validate(self) -> BuildConfig:
        _choice("config", "task", self.task, TASK_ROLES)
        for encoder in self.roles:
            _choice("config", "roles", encoder, ROLES)
        for name in SECTIONS:
            getattr(self, name).check()
        return self

    @classmethod
    def for_task(cls, task: str, encoder: str | None = None, **sections) -> BuildConfig:
        _choice("config", "task", task, TASK_ROLES)
        roles = [encoder] if encoder else list(TASK_ROLES[task])
        return cls(task=task, roles=roles, **sections).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildConfig:
        unknown = sorted(set(data) - {"task", "roles", *SECTIONS})
        if unknown:
            raise InputError(f"unknown config key(s) {unknown}; valid: task, roles, {', '.join(SECTIONS)}")
        kwargs = {k: data[k] for k in ("task", "roles") if k in data}
        for name, section in SECTIONS.items():
            kwargs[name] = _section(name, section, data.get(name, {}))
        return cls(**kwargs).validate()

    @classmethod
    def load(cls, path: str | Path) -> BuildConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config {path} does not exist; write one with 'clipforge config'")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"config {path} is not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def _section(name: str, section, values: dict):
    if not isinstance(values, dict):
        raise InputError(f"config section {name!r} must be an object, got {type(values).__name__}")
    valid = {f.name for f in dataclasses.fields(section)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in {name!r}; valid: {', '.join(sorted(valid))}")
    try:
        return section(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"config section {name!r}: {exc}") from exc
