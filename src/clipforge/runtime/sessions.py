"""ONNX Runtime sessions: device -> execution providers, threads, spinning. No torch, no transformers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipforge.errors import InputError
from clipforge.runtime import optimized
from clipforge.runtime.backends import OpenVINOSession, check_backend

DEVICE_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}

PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu (with TensorRT)",
    "DmlExecutionProvider": "onnxruntime-directml",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "QNNExecutionProvider": "onnxruntime-qnn",
    "CoreMLExecutionProvider": "onnxruntime (macOS build)",
}


@dataclass(frozen=True)
class SessionConfig:
    """How encoder sessions are created."""

    device: str = "cpu"
    threads: int | None = None  # intra-op threads; None = onnxruntime's default (all cores)
    spinning: bool = False  # busy-wait between ops: faster for back-to-back calls, burns shared cores
    optimization: str = "all"  # disabled | basic | extended | all
    backend: str = "onnxruntime"  # onnxruntime | openvino (resolved: never "auto" here)
    precision: str = "fp32"  # fp32 | bf16 (OpenVINO's inference precision; onnxruntime runs the graph as is)
    arena: bool = True  # onnxruntime's CPU memory arena: off keeps ~10% less peak RSS, same wall time (B/32 int8)
    saved_graph: bool = True  # use the optimised graph a build saved for this machine (runtime/optimized.py)
    compile_cache: bool = True  # OpenVINO's compiled-model cache (builds turn it off for their scratch graphs)


def providers_for(device: str) -> list[str]:
    """Execution providers for ``device`` (CPU as fallback); a provider that is not installed is an error."""
    import onnxruntime as ort

    if device not in DEVICE_PROVIDERS:
        raise InputError(f"unknown device {device!r}; choose one of: {', '.join(DEVICE_PROVIDERS)}")
    provider = DEVICE_PROVIDERS[device]
    if provider not in ort.get_available_providers():
        raise InputError(
            f"device {device!r} needs {provider}, which this onnxruntime lacks "
            f"(available: {', '.join(ort.get_available_providers())}); install {PROVIDER_PACKAGES[provider]}"
        )
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


def session_options(config: SessionConfig):
    import onnxruntime as ort

    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if config.optimization not in levels:
        raise InputError(f"unknown optimisation level {config.optimization!r}; choose one of: {', '.join(levels)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[config.optimization]
    opts.enable_cpu_mem_arena = config.arena
    if config.threads:
        opts.intra_op_num_threads = config.threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    opts.log_severity_level = log_severity()
    return opts


def log_severity() -> int:
    """onnxruntime's log level: errors only (its warnings, e.g. about constant folding in fp16 graphs, are not
    actionable for users); onnxruntime's default (warnings) when CLIPFORGE_DEBUG is set."""
    import os

    return 2 if os.environ.get("CLIPFORGE_DEBUG") else 3


def make_session(path: str | Path, config: SessionConfig = SessionConfig()):
    if config.backend == "openvino":
        check_backend("openvino")
        if config.device != "cpu":
            raise InputError(
                f"backend 'openvino' runs on the CPU here; got device {config.device!r} "
                "(use backend='onnxruntime' with that device)"
            )
        return OpenVINOSession(path, config.threads, config.precision, cache=config.compile_cache)
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model {path} does not exist; pass the model.onnx written by export or build")
    providers = providers_for(config.device)
    saved = _saved_optimized(path, config, providers)
    if saved is not None:
        return saved
    try:
        return ort.InferenceSession(str(path), session_options(config), providers=providers)
    except (ort.capi.onnxruntime_pybind11_state.InvalidProtobuf, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
        raise InputError(f"cannot load {path}: {str(exc).splitlines()[0]}; re-export it") from exc


def _saved_optimized(path: Path, config: SessionConfig, providers: list[str]):
    """A session on the optimised graph the build saved for this machine (optimisation already applied), or
    None: not saved, made elsewhere, another level asked for, or it fails to load (then the portable graph
    is used; CLIPFORGE_DEBUG says why)."""
    import onnxruntime as ort

    use = config.saved_graph and config.optimization == "all"
    graph = optimized.usable(path, config.device) if use else None
    if graph is None:
        return None
    opts = session_options(config)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(graph), opts, providers=providers)
    except Exception as exc:  # noqa: BLE001  any failure: the portable graph still works
        _debug(f"saved optimised graph {graph} not used: {str(exc).splitlines()[0]}")
        return None


def _debug(message: str) -> None:
    import os
    import sys

    if os.environ.get("CLIPFORGE_DEBUG"):
        print(f"clipforge: {message}", file=sys.stderr)
