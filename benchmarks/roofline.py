"""A measured roofline on this machine: the CPU and its matrix flags, GEMM peaks (2048², threads = cores) per
backend and precision (onnxruntime, OpenVINO, PyTorch as reference), then per encoder and build the achieved
img/s (texts/s), the matmul limit (FLOPs per item / best peak in that precision) and the fraction, side by side
with PyTorch eager fp32 (bench_encoders' variants). Everything is measured in this one run.
    python benchmarks/roofline.py [--repeats 5] [--gemm-only] [--only int8]
"""

from __future__ import annotations

import argparse
import json
import os


def print_peaks(peaks: dict) -> None:
    print(f"GEMM 2048x2048x2048, {os.cpu_count()} threads (GFLOP/s; int8: GOP/s)")
    print(f"{'backend':12} {'fp32':>8} {'bf16':>8} {'int8':>8}")
    for backend, row in peaks.items():
        cells = [f"{v:8.1f}" if isinstance(v, float) else f"{'-':>8}" for v in row.values()]
        print(f"{backend:12} {' '.join(cells)}")
    for backend, row in peaks.items():
        for precision, value in row.items():
            if not isinstance(value, float):
                print(f"  {backend} {precision}: not measured ({value})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant names")
    parser.add_argument("--gemm-only", action="store_true", help="peaks only, no encoders")
    args = parser.parse_args()
    from clipforge.runtime.cpu import describe

    info = describe()
    print(f"CPU: {info['model']}, {info['cores']} cores; flags: {', '.join(info['flags'])}")
    if args.gemm_only:
        from clipforge.perf.roofline import gemm_calls, peaks_from, round_robin

        calls, reasons = gemm_calls()
        medians = round_robin(calls, args.repeats)
        for clock in ("wall", "cpu"):
            print(f"== {clock}")
            print_peaks(peaks_from(medians[clock], reasons, clock=clock))
        return
    from bench_encoders import measure, print_all

    result = measure(args.repeats, set(filter(None, args.only.split(","))))
    print(json.dumps({"cpu": info, **result}))
    print_all(result, print_peaks)


if __name__ == "__main__":
    main()
