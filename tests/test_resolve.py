"""The resolver: one cached export per checkpoint and options, used by from_pretrained, export-classifier and
build; exported folders pass through; options a folder cannot satisfy are errors; runtime stays light."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import clipforge.builder
import clipforge.export
import clipforge.export.cache
from clipforge.errors import InputError
from clipforge.models import ZeroShotModel, model_folder, shape_options


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of export_model (as the export cache calls it) and build_composite (which clipforge.models
    imports at call time)."""
    calls = {"export": 0, "build": 0}
    real_export, real_build = clipforge.export.cache.export_model, clipforge.builder.build_composite

    def export(*args, **kwargs):
        calls["export"] += 1
        return real_export(*args, **kwargs)

    def build(*args, **kwargs):
        calls["build"] += 1
        return real_build(*args, **kwargs)

    monkeypatch.setattr(clipforge.export.cache, "export_model", export)
    monkeypatch.setattr(clipforge.builder, "build_composite", build)
    return calls


def test_checkpoint_is_exported_once_for_from_pretrained_and_the_classifier(tiny_clip, tmp_path, monkeypatch, counted):
    from clipforge.pipeline.classifier import export_classifier

    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "cache"))
    first = ZeroShotModel.from_pretrained(tiny_clip, show_progress=False)
    second = ZeroShotModel.from_pretrained(tiny_clip, show_progress=False)
    for name in ("a.onnx", "b.onnx"):  # used to re-export into a temporary folder on every call
        export_classifier(str(tiny_clip), tmp_path / name, ["red", "blue"], ["a {}"])
    assert counted == {"export": 1, "build": 0}
    assert first.folder == second.folder and first.folder.is_relative_to(tmp_path / "cache")
    static = ZeroShotModel.from_pretrained(tiny_clip, static=True, show_progress=False)
    assert counted["export"] == 2 and static.manifest.static and static.folder != first.folder


def test_build_options_build_once_and_stay_close_to_fp32(tiny_clip, tmp_path, counted):
    fp32 = ZeroShotModel.from_pretrained(tiny_clip, cache_dir=tmp_path / "c", show_progress=False)
    model = ZeroShotModel.from_pretrained(
        tiny_clip, cache_dir=tmp_path / "c", quantize="int8-dynamic", show_progress=False
    )
    again = ZeroShotModel.from_pretrained(
        tiny_clip, cache_dir=tmp_path / "c", quantize="int8-dynamic", show_progress=False
    )
    assert counted["build"] == 1 and again.folder == model.folder != fp32.folder
    assert model.manifest.build["config"]["quantize"]["mode"] == "int8-dynamic"
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), np.uint8)) for i in range(4)]
    cosine = np.sum(model.embed_images(images) * fp32.embed_images(images), axis=1)
    assert cosine.min() > 0.95, cosine  # int8 of the same weights, not another model


def test_exported_folder_passes_through_and_unmet_options_are_errors(tiny_clip, tmp_path, counted):
    folder = model_folder(tiny_clip, cache_dir=tmp_path, show_progress=False)
    assert model_folder(folder) == folder and counted["export"] == 1
    assert model_folder(folder, options={"static": False}) == folder
    with pytest.raises(InputError, match="already exported.*static.*pass the checkpoint"):
        model_folder(folder, options={"static": True, "sequence_length": 16})
    with pytest.raises(InputError, match=r"unknown export/build option\(s\) \['quantise'\]; valid: opset"):
        model_folder(tiny_clip, options={"quantise": "int8-dynamic"})


def test_shape_config_to_options_and_its_errors():
    assert shape_options(
        {
            "image-encoder": {"shape_config": {"height": 64, "width": 64}},
            "text-encoder": {"shape_config": {"sequence_length": 16}},
        }
    ) == {"static": True, "batch_size": 1, "image_size": 64, "sequence_length": 16}
    cases = [
        ({"vision": {}}, "unknown sub-model 'vision'; valid: image-encoder, text-encoder"),
        ({"image-encoder": {"shape": {}}}, r"unknown key\(s\) \['shape'\]; valid: shape_config"),
        ({"text-encoder": {"shape_config": {"height": 3}}}, "valid for text-encoder: sequence_length, batch"),
        ({"image-encoder": {"shape_config": {"height": 64, "width": 48}}}, "only square"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            shape_options(kwargs)


def test_unknown_keywords_tasks_and_skip_build_are_one_line_errors(tiny_clip, tmp_path):
    folder = model_folder(tiny_clip, show_progress=False)
    with pytest.raises(
        InputError,
        match=r"from_onnx\(\) got unknown keyword\(s\) \['provider'\]; accepted: task, "
        "hf_config, device, threads, spinning",
    ):
        ZeroShotModel.from_onnx(folder, provider="cuda")
    with pytest.raises(
        InputError,
        match=r"from_pretrained\(\) got unknown keyword\(s\) \['quantise'\]; "
        "accepted: task, .* quantize",
    ):
        ZeroShotModel.from_pretrained(folder, quantise="int8-dynamic")
    with pytest.raises(InputError, match="task 'image-to-text' is not supported.*zero-shot-image-classification"):
        ZeroShotModel.from_pretrained(folder, task="image-to-text")
    with pytest.raises(InputError, match="skip_build=True"):
        ZeroShotModel.from_onnx(folder, skip_build=False)


def test_save_pretrained_writes_a_folder_that_loads_the_same(tiny_clip, tmp_path):
    model = ZeroShotModel.from_pretrained(tiny_clip, show_progress=False)
    out = model.save_pretrained(tmp_path / "saved")
    again = ZeroShotModel.from_onnx(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"
    )
    np.testing.assert_array_equal(again.embed_texts(["a red circle"]), model.embed_texts(["a red circle"]))
    assert not list(tmp_path.glob(".saved.tmp-*"))
    with pytest.raises(Exception, match="exists"):
        model.save_pretrained(out)


RUNTIME_ONLY = """
import sys
from clipforge import ZeroShotModel
from PIL import Image
model = ZeroShotModel.from_pretrained({folder!r})  # an exported folder: no export, no build
model.classify([Image.new("RGB", (40, 30), (200, 10, 10))], ["red", "blue"])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "onnx")
             or m.startswith(("clipforge.export", "clipforge.builder")))
print(bad)
"""


def test_runtime_imports_no_export_builder_torch_or_transformers(tiny_clip):
    folder = model_folder(tiny_clip, show_progress=False)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUNTIME_ONLY.format(folder=str(folder)))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_runtime_sources_never_import_export_builder_or_models():
    from pathlib import Path

    import clipforge.runtime

    root = Path(clipforge.runtime.__file__).parent
    offenders = []
    for path in root.glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.strip()
            if code.startswith(("import clipforge.", "from clipforge.")) and code.split()[1].startswith(
                ("clipforge.export", "clipforge.builder", "clipforge.pipeline")
            ):
                offenders.append(f"{path.name}:{number}: {code}")
            if "clipforge.models" in code:
                offenders.append(f"{path.name}:{number}: {code}")
    assert offenders == []


@pytest.mark.slow
def test_eval_takes_a_checkpoint_through_the_resolver(tiny_clip, tmp_path, counted):
    from clipforge.cli.main import main

    for name in ("red", "blue"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (30, 30), name).save(tmp_path / "d" / name / "0.png")
    folder = model_folder(tiny_clip, show_progress=False)
    exports = counted["export"]
    assert main(["eval", "-m", str(tiny_clip), "--dataset", str(tmp_path / "d"), "-q"]) == 0
    assert counted["export"] == exports  # the cached export of the same checkpoint is reused
    assert folder.is_dir()
