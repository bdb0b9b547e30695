"""The speed-driven build decisions with injected timings (known answers), and the timing itself: sessions made
once, outside the timed loop. Also SigLIP int8-static calibrated from a parquet file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipforge.builder import BuildConfig, build_composite
from clipforge.builder.auto import pick_fastest
from clipforge.builder.stages import op_counts
from clipforge.builder.timing import InferenceTimer, median_seconds
from clipforge.models import model_folder
from clipforge.runtime.model import ZeroShotModel
from clipforge.testing.shapes import noise_folder


def test_median_seconds_times_only_the_runs_after_warmup():
    ticks = iter([10.0, 11.0, 20.0, 23.0, 30.0, 32.0])  # runs take 1, 3 and 2 s
    calls = []
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2, clock=lambda: next(ticks)) == 2.0
    assert len(calls) == 5


def test_inference_timer_creates_one_session_outside_the_loop(tiny_clip, monkeypatch):
    import clipforge.builder.timing as timing
    from clipforge.builder.calibration import load_calibration
    from clipforge.builder.parity import make_probe

    folder = model_folder(tiny_clip, show_progress=False)
    probe = make_probe(ZeroShotModel.from_onnx(folder), load_calibration(None, 4))
    sessions, runs = [], []

    def counting_session(path, config):
        session = real(path, config)
        sessions.append(path)
        run = session.run
        session = _Spy(session, lambda *a, **k: (runs.append(1), run(*a, **k))[1])
        return session

    real = timing.make_session
    monkeypatch.setattr(timing, "make_session", counting_session)
    seconds = InferenceTimer(probe, repeats=5)(folder / "image-encoder" / "model.onnx", "image-encoder")
    assert len(sessions) == 1 and len(runs) == 6 and seconds > 0  # 1 warm-up + 5 timed runs, one session


class _Spy:
    def __init__(self, session, run):
        self._session, self.run = session, run

    def __getattr__(self, name):
        return getattr(self._session, name)


def test_auto_picks_the_least_time_within_the_drop():
    tried = [
        {"image": "none", "text": "none", "drop_pp": 0.0, "seconds": 5.0},
        {"image": "int8-static", "text": "none", "drop_pp": 2.5, "seconds": 1.0},
        {"image": "int8-dynamic", "text": "int8-dynamic", "drop_pp": 0.5, "seconds": 2.0},
        {"image": "int8-dynamic", "text": "none", "drop_pp": 0.9, "seconds": 3.0},
    ]
    assert pick_fastest(tried, 1.0) == {"image-encoder": "int8-dynamic", "text-encoder": "int8-dynamic"}
    assert pick_fastest(tried, 3.0) == {"image-encoder": "int8-static", "text-encoder": "none"}
    assert pick_fastest(tried, 0.0) == {"image-encoder": "none", "text-encoder": "none"}


@pytest.mark.parametrize("fused_seconds,kept", [(2.0, False), (1.04, True), (0.5, True)])
def test_fused_graph_is_kept_only_when_not_slower(tiny_clip, tmp_path, fused_seconds, kept):
    def timer(path, role):  # the fused graph is written as optimized.onnx; the fp32 export is model.onnx
        return fused_seconds if path.name == "optimized.onnx" else 1.0

    config = BuildConfig.for_task("image-feature-extraction")
    fp32_ops = op_counts(model_folder(tiny_clip, show_progress=False) / "image-encoder" / "model.onnx")
    result = build_composite(tiny_clip, tmp_path / "o", config, timer=timer, show_progress=False)
    stages = result.report["roles"]["image-encoder"]["stages"]
    optimize = stages[0]
    assert optimize["stage"] == "optimize" and optimize["parity"]["min_cosine"] >= 0.9999
    assert optimize["inference_seconds"] == {"fused": fused_seconds, "unfused": 1.0}
    assert optimize["kept"] is kept
    assert optimize["why"] == ("validated and not slower" if kept else "slower than unfused")
    assert optimize["fused"] and optimize["ops"] != fp32_ops  # the fusion changed the graph
    assert (stages[-1]["ops"] == optimize["ops"]) is kept  # the compiled graph is the one that was chosen


@pytest.fixture(scope="module")
def labelled_parquet(tmp_path_factory):
    """12 images in 3 classes as a parquet file with an ``image`` struct, int labels and class-name metadata."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    rows = []
    for i in range(12):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
        rows.append({"image": {"bytes": buffer.getvalue(), "path": f"{i}.png"}, "label": i % 3})
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata({"class_names": json.dumps(["circle", "square", "triangle"])})
    path = tmp_path_factory.mktemp("calib") / "calib.parquet"
    pq.write_table(table, path)
    return path


def test_calibration_from_parquet(labelled_parquet):
    from clipforge.builder.calibration import load_calibration

    calib = load_calibration(labelled_parquet, samples=6)
    assert calib.class_names == ["circle", "square", "triangle"]
    assert len(calib.images) == 6 and calib.images[0].size == (40, 36)
    assert calib.labels == [int(i) % 3 for i in _picked(12, 6)]
    assert calib.prompts == ["This is a photo of circle.", "This is a photo of square.", "This is a photo of triangle."]


def _picked(total, samples):
    return sorted(np.random.default_rng(0).choice(total, samples, replace=False).tolist())


def test_siglip_int8_static_from_parquet(tiny_siglip, labelled_parquet, tmp_path):
    result = build_composite(
        tiny_siglip, tmp_path / "s8", quantize="int8-static", calibration_data=labelled_parquet, show_progress=False
    )
    assert result.report["calibration"] == str(labelled_parquet)
    for role in ("image-encoder", "text-encoder"):
        stage = result.report["roles"][role]["stages"][0]
        assert stage["stage"] == "quantize:int8-static" and stage["calibration_batches"] >= 1
        assert stage["ops"].get("QuantizeLinear", 0) > 0 and stage["parity"]["min_cosine"] >= 0.95
    model = ZeroShotModel.from_onnx(result.path)
    assert model.manifest.logit_bias is not None  # SigLIP scoring kept
    assert model.embed_texts(["a red circle"]).shape == (1, model.manifest.embed_dim)


@pytest.mark.slow
def test_auto_choice_follows_injected_inference_times(tiny_clip, tmp_path):
    """With every candidate allowed (drop 100 pp), auto must take the combination the timer says is fastest."""
    data = noise_folder(tmp_path / "data")
    times = {
        ("image-encoder", "none"): 3.0,
        ("image-encoder", "int8-dynamic"): 2.0,
        ("image-encoder", "int8-static"): 1.0,
        ("text-encoder", "none"): 1.0,
        ("text-encoder", "int8-dynamic"): 2.0,
    }

    def timer(path, role, session=None):  # candidates live in .../auto/<role>/<mode>/model.onnx
        return times.get((role, path.parent.name), 1.0)

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
    assert auto["chosen"] == {"image-encoder": "int8-static", "text-encoder": "none"}
    assert {(c["image"], c["text"]): c["seconds"] for c in auto["candidates"]}[("int8-static", "none")] == 2.0
