"""The optimised graph a build saves beside each encoder: used where it was made, ignored elsewhere, never
trusted when damaged, and equal to the portable graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipforge.builder import build_composite
from clipforge.runtime import cpu, optimized
from clipforge.runtime.encoders import Encoder
from clipforge.runtime.model import ZeroShotModel
from clipforge.runtime.sessions import SessionConfig, make_session

TEXTS = ["a red circle", "two blue squares on grass"]


@pytest.fixture(scope="module")
def built(tiny_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "int8"
    build_composite(tiny_clip, out, quantize="int8-dynamic", show_progress=False)
    return out


def _model_path(session) -> str:
    return session._model_path  # onnxruntime keeps the path it loaded


def test_build_saves_and_checks_the_optimised_graph(built):
    report = json.loads((built / "build.json").read_text())
    for role in ("image-encoder", "text-encoder"):
        model = built / role / "model.onnx"
        graph, data, record = optimized.paths(model)
        assert graph.is_file() and data.is_file() and record.is_file()
        compile_stage = report["roles"][role]["stages"][-1]
        assert compile_stage["saved_optimized"] is True
        assert compile_stage["saved_vs_portable_max_abs"] <= 1e-5
        assert compile_stage["optimized_for"]["cpu_flags"] == cpu.relevant_flags()
        assert _model_path(make_session(model)) == str(graph)
        assert _model_path(make_session(model, SessionConfig(saved_graph=False))) == str(model)
        assert _model_path(make_session(model, SessionConfig(optimization="basic"))) == str(model)


def test_saved_and_portable_graphs_embed_alike(built):
    model = ZeroShotModel.from_onnx(built)
    assert _model_path(model.text_encoder.session).endswith("model.optimized.onnx")
    portable = Encoder(
        make_session(built / role_file("text-encoder"), SessionConfig(saved_graph=False)), "text-encoder"
    )
    tokens = model.tokenizer.encode(TEXTS)
    feed = {"input_ids": tokens.input_ids, "attention_mask": tokens.attention_mask}
    assert np.abs(model.text_encoder(feed) - portable(feed)).max() <= 1e-5


def role_file(role: str) -> str:
    return f"{role}/model.onnx"


def test_another_machine_loads_the_portable_graph(built, fake_cpu):
    model = built / role_file("image-encoder")
    fake_cpu("fpu sse sse2 sse4_1")  # an older CPU: none of the flags the graph was optimised for
    assert optimized.usable(model, "cpu") is None
    assert _model_path(make_session(model)) == str(model)


def test_damaged_saved_graph_falls_back(built, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    model = copy / role_file("image-encoder")
    graph, data, record = optimized.paths(model)
    graph.write_bytes(b"not a graph")
    assert optimized.usable(model, "cpu") == graph  # the key still matches: loading is what fails
    assert _model_path(make_session(model)) == str(model)
    record.write_text("{broken")
    assert optimized.usable(model, "cpu") is None
    data.unlink()
    record.write_text(json.dumps(optimized.key(model, "cpu")))
    assert optimized.usable(model, "cpu") is None


def test_single_encoder_build_keeps_its_saved_graph(tiny_clip, tmp_path):
    from clipforge.builder import BuildConfig

    config = BuildConfig.for_task("zero-shot-image-classification", "image-encoder")
    build_composite(tiny_clip, tmp_path / "img", config, show_progress=False)
    names = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert {"model.onnx", "model.optimized.onnx", "model.optimized.onnx.data", "model.optimized.json"} <= set(names)
    assert _model_path(make_session(tmp_path / "img" / "model.onnx")).endswith("model.optimized.onnx")


def test_save_optimized_off_writes_only_the_portable_graph(tiny_clip, tmp_path):
    from clipforge.builder import BuildConfig

    config = BuildConfig.for_task("zero-shot-image-classification", "text-encoder")
    config.compile.save_optimized = False
    build_composite(tiny_clip, tmp_path / "t", config, show_progress=False)
    assert not any(".optimized" in p.name for p in (tmp_path / "t").iterdir())


def test_save_pretrained_carries_the_saved_graphs(built, tiny_clip, tmp_path):
    from clipforge.builder import BuildConfig

    copy = ZeroShotModel.from_onnx(built).save_pretrained(tmp_path / "copy")
    for role in ("image-encoder", "text-encoder"):
        model = copy / role_file(role)
        assert _model_path(make_session(model)) == str(optimized.paths(model)[0])  # still the fast path
    singles = {}
    for role in ("image-encoder", "text-encoder"):  # one-encoder builds keep the graphs at their root
        config = BuildConfig.for_task("zero-shot-image-classification", role)
        build_composite(tiny_clip, tmp_path / role, config, show_progress=False)
        singles[role] = tmp_path / role / "model.onnx"
    out = ZeroShotModel.from_onnx(singles).save_pretrained(tmp_path / "joined")
    assert not [p.name for p in out.iterdir() if ".optimized" in p.name]  # not copied as loose files
    assert all(optimized.usable(out / role_file(role), "cpu") for role in singles)
