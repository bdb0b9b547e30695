"""Inference backends for our ONNX files: onnxruntime (default) and OpenVINO (optional extra
``clipforge[openvino]``), read through OpenVINO's ONNX frontend. The OpenVINO session mimics the part of
``onnxruntime.InferenceSession`` the runtime uses (``get_inputs``, ``get_outputs``, ``run``), so ``Encoder``
and everything above it stay backend-agnostic. No torch, no transformers."""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipforge._io import cache_root
from clipforge.errors import InputError
from clipforge.runtime.cpu import require_bf16

BACKENDS = ("onnxruntime", "openvino", "auto")
PRECISIONS = ("fp32", "bf16")  # arithmetic inside the backend; int8 graphs carry their own quantisation
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


@dataclass(frozen=True)
class PortInfo:
    """Name and shape of a graph input/output; dynamic dims are strings, as onnxruntime reports them."""

    name: str
    shape: list


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "openvino" and not openvino_available():
        raise InputError("backend 'openvino' needs the openvino package; pip install 'clipforge[openvino]'")
    return backend


def resolve(backend: str, recorded: dict | None, precision: str | None = None) -> tuple[str, str]:
    """(backend, precision) for one encoder: ``auto`` takes what the build recorded (its chosen backend and
    precision), falling back to onnxruntime in fp32 with a warning when OpenVINO is not installed. An explicit
    ``precision`` overrides the record: "bf16" runs the graph's float parts in bf16 on OpenVINO (an int8 graph's
    quantised MatMuls stay int8)."""
    check_backend(backend)
    recorded = recorded or {}
    if precision not in (None, "fp32"):
        return _bf16(backend, precision)
    if precision == "fp32":  # the recorded backend (auto) with its usual fallback, in fp32 arithmetic
        recorded = {**recorded, "precision": "fp32"}
    precision = recorded.get("precision", "fp32")
    if backend == "auto":
        backend = recorded.get("backend", "onnxruntime")
        if backend == "openvino" and not openvino_available():
            warnings.warn(
                "this build was chosen to run on OpenVINO, which is not installed; running it on "
                "onnxruntime in fp32 (pip install 'clipforge[openvino]' for the measured speed)",
                stacklevel=3,
            )
            backend = "onnxruntime"
    if backend == "onnxruntime":
        precision = "fp32"  # onnxruntime's CPU provider has no bf16 GEMM: the fp32 graph runs as is
    return backend, precision


def _bf16(backend: str, precision: str) -> tuple[str, str]:
    """An explicit bf16 precision: OpenVINO on a CPU with bf16 arithmetic, else a one-line reason."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if backend == "onnxruntime":
        raise InputError(
            "precision 'bf16' runs on OpenVINO (onnxruntime's CPU provider has no bf16 GEMM); use "
            "backend='openvino' or 'auto'"
        )

    require_bf16("precision='bf16'")
    return check_backend("openvino"), "bf16"


@functools.lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


def _cache_config() -> dict:
    """OpenVINO's compiled-model cache (keyed by OpenVINO on the graph, device and settings): a second load of
    the same graph imports the compiled blob instead of compiling (B/32 int8: 1.8 s -> 0.7 s measured by
    benchmarks/bench_startup.py). Under ``$CLIPFORGE_CACHE/openvino``; ``CLIPFORGE_OPENVINO_CACHE=0`` turns it off."""
    import os

    if os.environ.get("CLIPFORGE_OPENVINO_CACHE", "1") == "0":
        return {}
    return {"CACHE_DIR": str(cache_root() / "openvino")}


def _name(port) -> str:
    """A port may carry several tensor names (OpenVINO merges the ones of fused nodes): the graph's own name
    is the one without a node path."""
    return min(port.get_names(), key=lambda n: ("/" in n, len(n)))


def _shape(partial) -> list:
    return [d.get_length() if d.is_static else f"d{i}" for i, d in enumerate(partial)]


class OpenVINOSession:
    """One compiled OpenVINO model, one reusable inference request (calls are serialised by a lock)."""

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "fp32", cache: bool = True):
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"ONNX model {path} does not exist; pass the model.onnx written by export or build")
        config = {
            "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        config.update(_cache_config() if cache else {})
        try:
            self.compiled = _core().compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            raise InputError(f"OpenVINO cannot load {path}: {str(exc).strip().splitlines()[0]}") from exc
        self.precision = precision
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self._inputs = [PortInfo(_name(p), _shape(p.get_partial_shape())) for p in self.compiled.inputs]
        self._outputs = [PortInfo(_name(p), _shape(p.get_partial_shape())) for p in self.compiled.outputs]

    def get_inputs(self) -> list[PortInfo]:
        return self._inputs

    def get_outputs(self) -> list[PortInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        """What runs the graph, in onnxruntime's spelling (e.g. serve's /readyz reports it)."""
        return [f"OpenVINO:CPU:{self.precision}"]

    def run(self, output_names, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = output_names or [o.name for o in self._outputs]
        with self._lock:
            result = self._request.infer({k: np.ascontiguousarray(v) for k, v in feed.items()})
            by_name = {_name(port): value for port, value in result.items()}
            return [np.array(by_name[n], copy=True) for n in names]
