"""Build pipeline: configs, composite and single-encoder builds, cache, EP errors, kill-and-rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clipforge.builder import BuildConfig, build_composite
from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.models import ZeroShotModel


def test_config_round_trip_and_errors(tmp_path):
    cfg = BuildConfig.for_task("zero-shot-image-classification", "image-encoder")
    cfg.quantize.mode = "int8-static"
    assert BuildConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(InputError, match="quantize.mode = 'int4'.*allowed: none, int8-dynamic"):
        BuildConfig.from_dict({"quantize": {"mode": "int4"}})
    with pytest.raises(InputError, match=r"unknown key\(s\) \['colour'\] in 'optimize'"):
        BuildConfig.from_dict({"optimize": {"colour": 1}})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        BuildConfig.load(tmp_path / "bad.json")


def test_config_command_writes_one_file_per_sub_model(tmp_path):
    assert main(["config", "-m", "x/y", "-o", str(tmp_path / "clip.json")]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["clip_image-encoder.json", "clip_text-encoder.json"]
    assert BuildConfig.load(tmp_path / "clip_text-encoder.json").roles == ["text-encoder"]
    assert main(["config", "-m", "x/y", "--task", "feature-extraction", "-o", str(tmp_path / "t.json")]) == 0
    assert BuildConfig.load(tmp_path / "t.json").roles == ["text-encoder"]


def test_build_from_a_config_written_single_encoder_config(tiny_clip, tmp_path):
    assert main(["config", "-m", str(tiny_clip), "--quantize", "int8-dynamic", "-o", str(tmp_path / "c.json")]) == 0
    for role in ("image-encoder", "text-encoder"):
        assert (
            main(
                [
                    "build",
                    "-c",
                    str(tmp_path / f"c_{role}.json"),
                    "-m",
                    str(tiny_clip),
                    "-o",
                    str(tmp_path / role),
                    "-q",
                ]
            )
            == 0
        )
        manifest = json.loads((tmp_path / role / "manifest.json").read_text())
        assert manifest["encoders"] == {role: "model.onnx"} and manifest["build"]["config"]["roles"] == [role]
        assert manifest["build"]["roles"][role]["quantize"] == "int8-dynamic"
    roles = ("image-encoder", "text-encoder")
    model = ZeroShotModel.from_onnx({role: tmp_path / role / "model.onnx" for role in roles})
    fp32 = ZeroShotModel.from_pretrained(tiny_clip, show_progress=False)
    texts = ["a red circle", "a blue square"]
    assert np.sum(model.embed_texts(texts) * fp32.embed_texts(texts), axis=1).min() >= 0.95


@pytest.mark.parametrize("mode", ["none", "int8-dynamic", "fp16"])
def test_composite_build_loads_with_runtime(tiny_checkpoint, tmp_path, mode, monkeypatch):
    family, folder = tiny_checkpoint
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    result = build_composite(folder, tmp_path / "out", quantize=mode, show_progress=False)
    assert list((tmp_path / "cwd").iterdir()) == []  # no scratch files left in the working directory
    report = json.loads((tmp_path / "out" / "build.json").read_text())
    for role in ("image-encoder", "text-encoder"):
        stages = report["roles"][role]["stages"]
        assert stages[-1]["stage"] == "compile" and stages[-1]["parity"]["min_cosine"] > 0.95
        assert all({"seconds", "bytes", "ops", "parity"} <= set(s) for s in stages)
    model, fp32 = ZeroShotModel.from_onnx(result.path), ZeroShotModel.from_pretrained(folder, show_progress=False)
    images, texts = [_png(seed) for seed in range(3)], ["a red circle", "a blue square on grass"]
    floor = {"none": 0.9999, "fp16": 0.999, "int8-dynamic": 0.95}[mode]  # the build's own per-stage floors
    assert np.sum(model.embed_images(images) * fp32.embed_images(images), axis=1).min() >= floor
    assert np.sum(model.embed_texts(texts) * fp32.embed_texts(texts), axis=1).min() >= floor
    if mode == "int8-dynamic":
        assert any(
            "MatMulInteger" in s["ops"] or "DynamicQuantizeLinear" in s["ops"]
            for s in report["roles"]["image-encoder"]["stages"]
        )


def _png(seed: int = 0):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_unchanged_rebuild_is_skipped(tiny_clip, tmp_path):
    first = build_composite(tiny_clip, tmp_path / "out", show_progress=False)
    again = build_composite(tiny_clip, tmp_path / "out", show_progress=False)
    changed = build_composite(tiny_clip, tmp_path / "out", quantize="int8-dynamic", show_progress=False)
    assert not first.skipped and again.skipped and not changed.skipped


def test_missing_ep_names_the_package(tiny_clip, tmp_path, capsys):
    code = main(["build", "-m", str(tiny_clip), "-o", str(tmp_path / "o"), "--ep", "openvino"])
    assert code == 2 and "onnxruntime-openvino" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_static_build_for_npu_targets(tiny_clip, tmp_path):
    result = build_composite(tiny_clip, tmp_path / "s", static=True, quantize="int8-dynamic", show_progress=False)
    model = ZeroShotModel.from_onnx(result.path)
    assert model.image_encoder.static_batch == 1 and model.text_encoder.static_length == 77
    assert model.embed_texts(["a", "b", "c"]).shape == (3, 16)


@pytest.mark.parametrize("stage", ["export", "calibrate", "optimize", "quantize", "compile"])
@pytest.mark.slow
def test_killed_build_leaves_nothing_and_rebuilds(tiny_clip, tmp_path, stage):
    out = tmp_path / "out"
    quant = "int8-dynamic" if stage == "quantize" else "none"
    cmd = [
        sys.executable,
        "-m",
        "clipforge.cli.main",
        "build",
        "-m",
        str(tiny_clip),
        "-o",
        str(out),
        "--quantize",
        quant,
        "-q",
    ]
    env = dict(os.environ, CLIPFORGE_DEBUG_KILL=stage)
    killed = subprocess.run(cmd, env=env, capture_output=True)
    assert killed.returncode == -9
    assert not out.exists()  # no folder, so no model.onnx that loads but is wrong
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert not list(tmp_path.glob(".out.tmp-*"))
    model = ZeroShotModel.from_onnx(out)
    assert model.embed_texts(["a cat"]).shape == (1, 16)


def test_missing_calibration_data_is_a_one_line_error(tiny_clip, tmp_path, capsys):
    from clipforge.cli.main import main

    missing = tmp_path / "no-such-folder"
    code = main(
        [
            "build",
            "-m",
            str(tiny_clip),
            "-o",
            str(tmp_path / "out"),
            "--quantize",
            "int8-static",
            "--calibration-data",
            str(missing),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(missing) in err and "does not exist" in err and "unexpected" not in err
    assert not (tmp_path / "out").exists()
