"""What the CPU offers the encoders: model name, the ISA flags that matter for matrix engines, and the
precisions a build may ask for. Linux reads /proc/cpuinfo; elsewhere the flags are unknown (empty).
No torch, no transformers."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# Flags that decide which GEMM kernels run: fp32 (AVX2/AVX-512 FMA), int8 (VNNI, AMX-INT8), bf16.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
                  "amx_bf16", "amx_int8", "avx512_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# What each run-time precision needs from the CPU (any one flag of the tuple).
PRECISION_NEEDS = {"bf16": BF16_FLAGS, "int8": ("avx512_vnni", "avx_vnni", "amx_int8", "avx2")}


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


def require_bf16(what: str = "--quantize bf16") -> None:
    """Fail up front, in one line, on a CPU without bf16 arithmetic."""
    from clipforge.errors import InputError

    if not has_bf16():
        raise InputError(f"{what} needs a CPU with AVX512-BF16 or AMX-BF16; this CPU ({cpu_model()}) has "
                         f"{', '.join(relevant_flags()) or 'no known matrix flags'}; use --quantize none or int8-dynamic")


def missing_for(precision: str, recorded_flags: list[str] | None = None) -> list[str]:
    """Flags the build relied on that this CPU lacks: for ``precision`` (bf16/int8), or from the flags
    recorded when the build was chosen (matrix-engine flags only)."""
    flags = cpu_flags()
    if not flags:
        return []
    missing = []
    needs = PRECISION_NEEDS.get(precision)
    if needs and not flags & set(needs):
        missing.append("/".join(needs))
    engines = {"amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni"}
    missing += [f for f in (recorded_flags or []) if f in engines and f not in flags]
    return missing
