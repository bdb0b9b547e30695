"""``--quantize bf16``: the fp32 graph run by OpenVINO in bf16 keeps zero-shot accuracy on the trained fixture;
refused up front on CPUs without bf16 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from clipforge.builder import build_composite
from clipforge.errors import InputError
from clipforge.runtime import cpu
from clipforge.runtime.backends import openvino_available
from clipforge.runtime.model import ZeroShotModel


def _top1(model: ZeroShotModel, dataset) -> tuple[float, np.ndarray]:
    files = [(p, i) for i, c in enumerate(dataset.class_names) for p in sorted((dataset.folder("test") / c).iterdir())]
    text = model.label_embeddings(dataset.class_names, "a photo of a {}.")
    emb = model.embed_images([p for p, _ in files])
    pred = (emb @ text.T).argmax(1)
    return 100.0 * float(np.mean(pred == np.array([label for _, label in files]))), emb


@pytest.mark.slow
@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed (pip install 'clipforge[openvino]')")
@pytest.mark.skipif(not cpu.has_bf16(), reason=f"this CPU ({cpu.cpu_model()}) has no AVX512-BF16/AMX-BF16")
def test_bf16_build_keeps_top1_within_half_a_point(trained_clip, shapes_dataset, tmp_path):
    result = build_composite(
        trained_clip,
        tmp_path / "bf16",
        quantize="bf16",
        calibration_data=shapes_dataset.folder("train"),
        show_progress=False,
    )
    for role in ("image-encoder", "text-encoder"):
        stage = result.report["roles"][role]["stages"][0]
        assert stage["stage"] == "quantize:bf16" and stage["parity"]["min_cosine"] >= 0.999, stage
    assert result.report["runtime"]["image-encoder"] == {"backend": "openvino", "precision": "bf16"}
    assert "avx512_bf16" in result.report["cpu"]["relied_on"] or "amx_bf16" in result.report["cpu"]["relied_on"]
    bf16 = ZeroShotModel.from_onnx(result.path)  # auto: the recorded backend and precision
    fp32 = ZeroShotModel.from_onnx(result.path, backend="onnxruntime")
    assert bf16.backends == {"image-encoder": "openvino/bf16", "text-encoder": "openvino/bf16"}
    (acc_bf16, emb_bf16), (acc_fp32, emb_fp32) = _top1(bf16, shapes_dataset), _top1(fp32, shapes_dataset)
    assert acc_fp32 >= 80 and abs(acc_fp32 - acc_bf16) <= 0.5, (acc_fp32, acc_bf16)
    cosine = (emb_bf16 * emb_fp32).sum(1)
    assert cosine.min() >= 0.999 and np.abs(emb_bf16 - emb_fp32).max() > 1e-5  # bf16 really ran, and agrees


def test_bf16_build_is_refused_up_front_without_bf16(tiny_clip, tmp_path, fake_cpu):
    fake_cpu("sse avx2 fma", model="Old CPU")
    with pytest.raises(InputError, match=r"quantize='bf16' needs a CPU with AVX512-BF16 or AMX-BF16"):
        build_composite(tiny_clip, tmp_path / "out", quantize="bf16", show_progress=False)
    assert not (tmp_path / "out").exists()
