"""Compare an ONNX encoder with a reference on several inputs; collect every failure, then raise once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipforge.errors import ValidationError
from clipforge.specs import EncoderIO

Inputs = dict[str, np.ndarray]


@dataclass
class Tolerance:
    atol: float = 1e-4
    min_cosine: float = 0.9999


@dataclass
class EncoderReport:
    encoder: str
    cases: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((c["max_abs_diff"] for c in self.cases), default=float("nan"))

    @property
    def min_cosine(self) -> float:
        return min((c["min_cosine"] for c in self.cases), default=float("nan"))

    def as_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "min_cosine": self.min_cosine, "cases": self.cases}


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(denom, 1e-12)


def _case_name(inputs: Inputs) -> str:
    return "x".join(str(d) for d in next(iter(inputs.values())).shape[:2])


def _check_interface(session, io: EncoderIO, encoder: str) -> list[str]:
    failures = []
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if got_in != io.input_names:
        failures.append(f"{encoder}: inputs {got_in}, expected {io.input_names}")
    if got_out != io.output_names:
        failures.append(f"{encoder}: outputs {got_out}, expected {io.output_names}")
    return failures


def compare_encoder(
    onnx_path: Path,
    encoder: str,
    io: EncoderIO,
    reference: Callable[[Inputs], np.ndarray],
    cases: list[Inputs],
    tol: Tolerance | None = None,
) -> EncoderReport:
    """Run ``onnx_path`` and ``reference`` on each case and record max-abs-diff and cosine per case."""
    import onnxruntime as ort

    tol = tol or Tolerance()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = EncoderReport(encoder, failures=_check_interface(session, io, encoder))
    if report.failures:
        return report
    for inputs in cases:
        feed = {name: inputs[name] for name in io.input_names}
        got, want = session.run(None, feed)[0], reference(feed)
        name = f"{encoder}[{_case_name(inputs)}]"
        if got.shape != want.shape:
            report.failures.append(f"{name}: shape {got.shape}, expected {want.shape}")
            continue
        diff = float(np.abs(got - want).max())
        cos = float(cosine_rows(got, want).min())
        report.cases.append(
            {"input_shape": list(next(iter(feed.values())).shape), "max_abs_diff": diff, "min_cosine": cos}
        )
        if diff > tol.atol:
            report.failures.append(f"{name}: max abs diff {diff:.2e} > atol {tol.atol:.0e}")
        if cos < tol.min_cosine:
            report.failures.append(f"{name}: cosine {cos:.6f} < {tol.min_cosine}")
    return report


def raise_on_failures(what: str, reports: list[EncoderReport]) -> None:
    failures = [f for r in reports for f in r.failures]
    if failures:
        raise ValidationError(what, failures)
