"""Run-times for ``--quantize auto``: every (backend, precision) pair that can run a built graph on this machine,
measured with inference time only (sessions created outside the timing, through an injectable timer), and the
choice of the fastest (image, text) combination within ``max_accuracy_drop``."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass

from clipforge.runtime import backends, cpu
from clipforge.runtime.sessions import SessionConfig
from clipforge.specs import IMAGE_ROLE, TEXT_ROLE

# Graph built in a mode -> the (backend, precision) pairs that may run it. bf16 keeps the fp32 graph.
RUNTIMES = {
    "none": (("onnxruntime", "fp32"), ("openvino", "fp32")),
    "int8-dynamic": (("onnxruntime", "fp32"), ("openvino", "fp32")),
    # OpenVINO with the bf16 hint on an int8 graph: quantised MatMuls stay int8, the float parts (the
    # rest of attention, LayerNorm, GELU) run in bf16 (B/32 on an AVX512-BF16 EPYC: cosine 0.99987 to the
    # fp32 hint; as fast idle, +14% on a busy machine; measured per machine, like every pair)
    "int8-static": (("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")),
    "bf16": (("openvino", "bf16"),),
}

# timer(session_factory, feeds) -> seconds per pass over the probe: the session is created by the caller
Timer = Callable[[Callable, list], float]


@dataclass(frozen=True)
class Runtime:
    mode: str
    backend: str
    precision: str

    @property
    def session(self) -> SessionConfig:
        return SessionConfig(backend=self.backend, precision=self.precision, compile_cache=False)

    @property
    def label(self) -> str:
        return f"{self.mode}@{self.backend}/{self.precision}"


def available(mode: str) -> list[Runtime]:
    """The pairs for ``mode`` this machine can run: OpenVINO when installed, bf16 on CPUs with bf16."""

    out = []
    for backend, precision in RUNTIMES.get(mode, ()):
        if backend == "openvino" and not backends.openvino_available():
            continue
        if precision == "bf16" and not cpu.has_bf16():
            continue
        out.append(Runtime(mode, backend, precision))
    return out


def pick(tried: list[dict], max_drop: float) -> dict:
    """The fastest combination whose top-1 drop is within ``max_drop`` (pp); fp32 on onnxruntime always
    qualifies (drop 0), so there is always one."""
    allowed = [t for t in tried if t["drop_pp"] <= max_drop]
    return min(allowed, key=lambda t: t["seconds"])


def combinations(variants: dict, top1: Callable, baseline: float) -> list[dict]:
    """Every (image runtime, text runtime) pair: top-1, drop vs fp32 and the summed seconds.
    ``variants``: {(encoder, Runtime): {"embeddings", "seconds"}}."""
    image = [(rt, v) for (encoder, rt), v in variants.items() if encoder == IMAGE_ROLE]
    text = [(rt, v) for (encoder, rt), v in variants.items() if encoder == TEXT_ROLE]
    tried = []
    for (irt, iv), (trt, tv) in itertools.product(image, text):
        accuracy = top1(iv["embeddings"], tv["embeddings"])
        tried.append(
            {
                "image": irt.mode,
                "text": trt.mode,
                "image_runtime": asdict(irt),
                "text_runtime": asdict(trt),
                "top1": accuracy,
                "drop_pp": baseline - accuracy,
                "seconds": iv["seconds"] + tv["seconds"],
                "image_seconds": iv["seconds"],
                "text_seconds": tv["seconds"],
            }
        )
    return tried
