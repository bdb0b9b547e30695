"""What the CPU offers the encoders: model name, the ISA flags that matter for matrix engines, and the
precisions a build may ask for. Linux reads /proc/cpuinfo; elsewhere the flags are unknown (empty).
No torch, no transformers."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from clipforge.errors import InputError

# Flags that decide which GEMM kernels run: fp32 (AVX2/AVX-512 FMA), int8 (VNNI, AMX-INT8), bf16.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx512_fp16",
)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    path = Path(os.environ.get("CLIPFORGE_CPUINFO", "/proc/cpuinfo"))  # env: tests fake another CPU
    if not path.is_file():
        return {}
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """All flags the kernel reports for the first CPU (empty when unknown)."""
    return set(_cpuinfo().get("flags", "").split())


def relevant_flags() -> list[str]:
    flags = cpu_flags()
    return [f for f in RELEVANT_FLAGS if f in flags]


def describe() -> dict:
    """The CPU record stored in build.json and printed by the benchmarks."""
    return {"model": cpu_model(), "cores": os.cpu_count(), "flags": relevant_flags()}


def has_bf16() -> bool:
    return bool(cpu_flags() & set(BF16_FLAGS))


def require_bf16(what: str = "quantize='bf16'") -> None:
    """Fail up front, in one line, on a CPU without bf16 arithmetic."""

    if not has_bf16():
        raise InputError(
            f"{what} needs a CPU with AVX512-BF16 or AMX-BF16; this CPU ({cpu_model()}) has "
            f"{', '.join(relevant_flags()) or 'no known matrix flags'}; use quantize='none' or quantize='int8-dynamic'"
        )


# The matrix-engine flags that make a precision fast (what a build chosen by measurement relied on).
ENGINES = {"bf16": ("amx_bf16", "avx512_bf16"), "int8": ("amx_int8", "avx512_vnni", "avx_vnni")}


def int8_saturates() -> bool:
    """True on an x86 CPU without an int8 dot-product instruction (VNNI, AMX-INT8): onnxruntime's u8 x s8 kernels
    there add pairs of products in 16 bits and saturate with full-range (8-bit) weights; 7-bit weights
    (``reduce_range``) keep the sums in range. False where the flags are unknown or not x86."""
    flags = cpu_flags()
    return "avx2" in flags and not flags & set(ENGINES["int8"])


def relied_on(precisions) -> list[str]:
    """This CPU's engine flags that serve ``precisions`` (recorded in build.json)."""
    flags = cpu_flags()
    return sorted({f for p in precisions for f in ENGINES.get(p, ()) if f in flags})


def missing_for(precision: str, recorded: list[str] | None = None) -> list[str]:
    """What this CPU lacks: any flag that can run ``precision`` (bf16 needs one), and the engine flags the
    build relied on where it was chosen (``recorded``)."""
    flags = cpu_flags()
    if not flags:
        return []
    missing = ["/".join(BF16_FLAGS)] if precision == "bf16" and not flags & set(BF16_FLAGS) else []
    return missing + [f for f in (recorded or []) if f not in flags]
