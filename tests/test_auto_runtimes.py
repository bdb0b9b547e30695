"""``--quantize auto`` over (backend, precision) pairs: the choice from injected timings and accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from clipforge.builder import runtimes
from clipforge.builder.runtimes import Runtime, combinations, pick
from clipforge.specs import IMAGE_ROLE, TEXT_ROLE
from clipforge.testing.shapes import noise_folder


def _variants(seconds: dict, drift: dict) -> dict:
    """Embeddings: 4 images/4 classes, right unless ``drift`` flips some images to class 0."""
    eye = np.eye(4, dtype=np.float32)
    out = {}
    for (role, label), s in seconds.items():
        mode, rest = label.split("@")
        backend, precision = rest.split("/")
        emb = eye.copy()
        if role == IMAGE_ROLE:
            emb[: drift.get(label, 0)] = eye[0]
            emb[0] = eye[0]
        out[(role, Runtime(mode, backend, precision))] = {"embeddings": emb, "seconds": s}
    return out


def _top1(image, text):
    return 100.0 * float(np.mean((image @ text.T).argmax(1) == np.arange(4)))


def test_fastest_within_the_drop_wins_across_backends():
    seconds = {
        (IMAGE_ROLE, "none@onnxruntime/fp32"): 1.0,
        (IMAGE_ROLE, "bf16@openvino/bf16"): 0.4,
        (IMAGE_ROLE, "int8-static@openvino/fp32"): 0.3,
        (IMAGE_ROLE, "int8-dynamic@onnxruntime/fp32"): 0.5,
        (TEXT_ROLE, "none@onnxruntime/fp32"): 0.2,
        (TEXT_ROLE, "bf16@openvino/bf16"): 0.1,
    }
    tried = combinations(_variants(seconds, {"int8-static@openvino/fp32": 2}), _top1, 100.0)
    assert len(tried) == 8
    best = pick(tried, max_drop=1.0)  # int8-static on OpenVINO is fastest but loses 25 pp
    assert (best["image_runtime"]["backend"], best["image"], best["text"]) == ("openvino", "bf16", "bf16")
    assert best["seconds"] == pytest.approx(0.5) and best["drop_pp"] == 0
    loose = pick(tried, max_drop=30.0)
    assert loose["image"] == "int8-static" and loose["seconds"] == pytest.approx(0.4)


def test_fp32_onnxruntime_always_qualifies():
    seconds = {
        (IMAGE_ROLE, "none@onnxruntime/fp32"): 1.0,
        (IMAGE_ROLE, "int8-dynamic@openvino/fp32"): 0.1,
        (TEXT_ROLE, "none@onnxruntime/fp32"): 1.0,
    }
    best = pick(combinations(_variants(seconds, {"int8-dynamic@openvino/fp32": 3}), _top1, 100.0), 0.0)
    assert (best["image"], best["image_runtime"]["backend"]) == ("none", "onnxruntime")


def test_available_runtimes_follow_the_machine(monkeypatch):
    import clipforge.runtime.backends as backends
    import clipforge.runtime.cpu as cpu

    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    assert [r.label for r in runtimes.available("none")] == ["none@onnxruntime/fp32"]
    assert runtimes.available("bf16") == []
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(cpu, "has_bf16", lambda: False)
    assert runtimes.available("bf16") == []
    assert "int8-static@openvino/bf16" not in [r.label for r in runtimes.available("int8-static")]
    monkeypatch.setattr(cpu, "has_bf16", lambda: True)
    assert [r.label for r in runtimes.available("bf16")] == ["bf16@openvino/bf16"]
    assert [r.label for r in runtimes.available("int8-static")] == [
        "int8-static@onnxruntime/fp32",
        "int8-static@openvino/fp32",
        "int8-static@openvino/bf16",
    ]


@pytest.mark.slow
def test_auto_build_records_the_chosen_backend(tiny_clip, tmp_path):
    """A tiny auto build with injected times: the OpenVINO run of int8-static is made fastest, so it is chosen,
    build.json records the backend, the table and the CPU, and the runtime loads it on OpenVINO."""
    from clipforge.builder import build_composite
    from clipforge.runtime.backends import openvino_available
    from clipforge.runtime.cpu import has_bf16
    from clipforge.runtime.model import ZeroShotModel

    if not openvino_available():
        pytest.skip("openvino is not installed")
    data = noise_folder(tmp_path / "data")
    calls = []

    fastest = {
        (IMAGE_ROLE, "int8-static", "openvino", "bf16"): 0.4,
        (IMAGE_ROLE, "int8-static", "openvino", "fp32"): 0.5,
    }

    def timer(path, role, session=None):
        backend, precision = (session.backend, session.precision) if session else ("onnxruntime", "fp32")
        calls.append((role, path.parent.name, backend))
        return fastest.get((role, path.parent.name, backend, precision), 2.0)

    result = build_composite(
        tiny_clip,
        tmp_path / "auto",
        quantize="auto",
        max_accuracy_drop=100.0,
        calibration_data=data,
        timer=timer,
        show_progress=False,
    )
    auto = result.report["auto"]
    assert {(r, m, b) for r, m, b in calls} >= {(IMAGE_ROLE, "none", "openvino"), (TEXT_ROLE, "none", "openvino")}
    assert auto["chosen"][IMAGE_ROLE] == "int8-static"
    precision = "bf16" if has_bf16() else "fp32"  # int8 graph + bf16 float parts, where the CPU has bf16
    assert result.report["runtime"] == {IMAGE_ROLE: {"backend": "openvino", "precision": precision}}
    assert result.report["cpu"]["flags"] and {"image_runtime", "text_runtime"} <= set(auto["candidates"][0])
    model = ZeroShotModel.from_onnx(result.path)
    assert model.backends == {IMAGE_ROLE: f"openvino/{precision}", TEXT_ROLE: "onnxruntime/fp32"}
