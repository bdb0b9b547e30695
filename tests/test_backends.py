"""Backends: the same ONNX files on onnxruntime and OpenVINO give the same embeddings and labels; backend
selection, CPU-flag checks and their one-line errors/warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clipforge.errors import InputError
from clipforge.export import ExportOptions, export_model
from clipforge.runtime import cpu
from clipforge.runtime.backends import openvino_available
from clipforge.runtime.model import ZeroShotModel

needs_openvino = pytest.mark.skipif(
    not openvino_available(), reason="openvino is not installed (pip install 'clipforge[openvino]')"
)
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=needs_openvino)]
LABELS = ["red circle", "blue square", "green triangle", "a dog"]
TEXTS = LABELS + ["a photo of a very small yellow star on a wooden table, seen from above"]


@pytest.fixture(scope="module")
def exported(exported_tiny):
    return exported_tiny


def _images(n, seed=1):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_onnxruntime(exported, tiny_checkpoint, backend):
    family, _ = tiny_checkpoint
    ref = ZeroShotModel.from_onnx(exported[family], backend="onnxruntime")
    model = ZeroShotModel.from_onnx(exported[family], backend=backend)
    assert model.backends["image-encoder"] == f"{backend}/fp32"
    assert model.image_encoder.session.get_providers()[0].startswith(
        "OpenVINO" if backend == "openvino" else "CPUExecutionProvider"
    )
    images = _images(5)
    np.testing.assert_allclose(model.embed_images(images, batch_size=2), ref.embed_images(images), atol=1e-4)
    np.testing.assert_allclose(model.embed_texts(TEXTS), ref.embed_texts(TEXTS), atol=1e-4)
    assert [r[0]["label"] for r in model.classify(images, LABELS)] == [
        r[0]["label"] for r in ref.classify(images, LABELS)
    ]


@needs_openvino
def test_openvino_runs_static_graphs(tiny_clip, exported, tmp_path):
    static = export_model(tiny_clip, tmp_path / "s", ExportOptions(static=True, batch_size=2), show_progress=False)
    fixed = ZeroShotModel.from_onnx(static.path, backend="openvino")
    assert fixed.image_encoder.static_batch == 2
    ref = ZeroShotModel.from_onnx(exported["clip"], backend="onnxruntime")
    images = _images(3)
    np.testing.assert_allclose(fixed.embed_images(images), ref.embed_images(images), atol=1e-4)
    np.testing.assert_allclose(fixed.embed_texts(TEXTS), ref.embed_texts(TEXTS), atol=1e-4)


def test_auto_uses_the_recorded_backend(exported):
    from clipforge.specs import Manifest

    manifest = Manifest.load(exported["clip"])
    assert (
        ZeroShotModel.from_onnx(exported["clip"], manifest=manifest).backends["text-encoder"] == "onnxruntime/fp32"
    )  # a plain export records nothing
    if not openvino_available():
        pytest.skip("openvino is not installed")
    manifest.build = {"runtime": {"image-encoder": {"backend": "openvino", "precision": "fp32"}}}
    model = ZeroShotModel.from_onnx(exported["clip"], manifest=manifest, backend="auto")
    assert model.backends == {"image-encoder": "openvino/fp32", "text-encoder": "onnxruntime/fp32"}


def test_bad_backend_and_device(exported):
    with pytest.raises(InputError, match="unknown backend 'tensorflow'.*onnxruntime, openvino, auto"):
        ZeroShotModel.from_onnx(exported["clip"], backend="tensorflow")
    if openvino_available():
        with pytest.raises(InputError, match="runs on the CPU"):
            ZeroShotModel.from_onnx(exported["clip"], backend="openvino", device="cuda")


def test_bf16_is_refused_up_front_without_bf16_flags(fake_cpu):
    fake_cpu("fpu sse avx2 fma avx512f avx512_vnni")
    with pytest.raises(InputError, match=r"needs a CPU with AVX512-BF16 or AMX-BF16; this CPU \(Test CPU\)"):
        cpu.require_bf16()
    fake_cpu("avx2 avx512f avx512_bf16")
    cpu.require_bf16()  # no error
    assert cpu.describe()["flags"] == ["avx2", "avx512f", "avx512_bf16"]


def test_warning_when_cpu_lacks_what_the_build_was_chosen_for(exported, fake_cpu):
    from clipforge.runtime.model import warn_if_cpu_lacks
    from clipforge.specs import Manifest

    manifest = Manifest.load(exported["clip"])
    manifest.build = {
        "runtime": {"image-encoder": {"backend": "onnxruntime", "precision": "bf16"}},
        "cpu": {"model": "Big Xeon", "flags": ["avx512f", "amx_int8"], "relied_on": ["amx_int8"]},
    }
    fake_cpu("avx2 avx512f")
    with pytest.warns(
        UserWarning,
        match=r"chosen on Big Xeon and relies on amx_int8, avx512_bf16/amx_bf16, which this CPU \(Test CPU\) lacks",
    ):
        warn_if_cpu_lacks(manifest)
    fake_cpu("avx2 avx512f avx512_bf16 amx_int8 amx_tile amx_bf16")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_cpu_lacks(manifest)


def test_lazy_model_opens_only_the_encoder_it_uses(exported):
    model = ZeroShotModel.from_onnx(exported["clip"], lazy=True)
    assert not model.image_encoder.opened and not model.text_encoder.opened
    eager = ZeroShotModel.from_onnx(exported["clip"])
    np.testing.assert_allclose(model.embed_images(_images(2)), eager.embed_images(_images(2)), atol=1e-6)
    assert model.image_encoder.opened and not model.text_encoder.opened
    assert model.embed_texts(["a dog"]).shape == (1, model.manifest.embed_dim) and model.text_encoder.opened


def test_lazy_model_checks_dims_when_the_encoder_opens(exported):
    clip, siglip = exported["clip"], exported["siglip"]
    mixed = ZeroShotModel.from_onnx(
        {
            "image-encoder": clip / "image-encoder" / "model.onnx",
            "text-encoder": siglip / "text-encoder" / "model.onnx",
        },
        lazy=True,
    )
    mixed.embed_images(_images(1))
    with pytest.raises(InputError, match="different models"):
        mixed.embed_texts(["a dog"])


def test_arena_option_reaches_the_session(exported, monkeypatch):
    import clipforge.runtime.sessions as sessions

    seen = []
    original = sessions.session_options
    monkeypatch.setattr(sessions, "session_options", lambda c: seen.append(original(c)) or seen[-1])
    model = ZeroShotModel.from_onnx(exported["clip"], arena=False, backend="onnxruntime")
    assert [o.enable_cpu_mem_arena for o in seen] == [False, False]
    np.testing.assert_allclose(
        model.embed_texts(TEXTS), ZeroShotModel.from_onnx(exported["clip"]).embed_texts(TEXTS), atol=1e-6
    )


@needs_openvino
def test_openvino_compiled_model_cache(exported, tmp_path, monkeypatch):
    """A second load imports OpenVINO's compiled blob (same embeddings); the cache can be turned off."""
    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "cache"))
    images = _images(2)
    first = ZeroShotModel.from_onnx(exported["clip"], backend="openvino").embed_images(images)
    blobs = sorted((tmp_path / "cache" / "openvino").glob("*.blob"))
    assert len(blobs) == 2  # one per encoder
    again = ZeroShotModel.from_onnx(exported["clip"], backend="openvino").embed_images(images)
    assert np.array_equal(first, again)
    assert sorted((tmp_path / "cache" / "openvino").glob("*.blob")) == blobs
    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "off"))
    monkeypatch.setenv("CLIPFORGE_OPENVINO_CACHE", "0")
    ZeroShotModel.from_onnx(exported["clip"], backend="openvino").embed_images(images)
    assert not (tmp_path / "off").exists()


@needs_openvino
def test_explicit_bf16_precision_on_openvino(exported, fake_cpu):
    """precision='bf16' runs the graph's float parts in bf16 on OpenVINO; refused in one line where it cannot run."""
    if not cpu.has_bf16():
        pytest.skip(f"this CPU ({cpu.cpu_model()}) has no AVX512-BF16/AMX-BF16")
    images = _images(3)
    fp32 = ZeroShotModel.from_onnx(exported["clip"], backend="openvino").embed_images(images)
    model = ZeroShotModel.from_onnx(exported["clip"], backend="auto", precision="bf16")
    assert model.backends == {"image-encoder": "openvino/bf16", "text-encoder": "openvino/bf16"}
    bf16 = model.embed_images(images)
    assert (fp32 * bf16).sum(1).min() >= 0.999 and np.abs(fp32 - bf16).max() > 1e-6  # bf16 ran, and agrees
    with pytest.raises(InputError, match="precision 'bf16' runs on OpenVINO"):
        ZeroShotModel.from_onnx(exported["clip"], backend="onnxruntime", precision="bf16")
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        ZeroShotModel.from_onnx(exported["clip"], precision="fp16")
    fake_cpu("avx2 fma avx512f")
    with pytest.raises(InputError, match=r"precision='bf16' needs a CPU with AVX512-BF16"):
        ZeroShotModel.from_onnx(exported["clip"], backend="openvino", precision="bf16")


@needs_openvino
def test_precision_flag_on_the_cli(exported, tmp_path, capsys):
    from clipforge.cli.main import main

    if not cpu.has_bf16():
        pytest.skip(f"this CPU ({cpu.cpu_model()}) has no AVX512-BF16/AMX-BF16")
    image = tmp_path / "a.png"
    _images(1)[0].save(image)
    args = ["classify", str(image), "-l", "red circle,blue square", "-m", str(exported["clip"]), "--json"]
    assert main(args) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert main([*args, "--precision", "bf16"]) == 0
    bf16 = json.loads(capsys.readouterr().out)
    assert bf16[0]["image"] == str(image) and len(bf16[0]["predictions"]) == 2
    scores = [{p["label"]: p["score"] for p in rows[0]["predictions"]} for rows in (fp32, bf16)]
    assert max(abs(scores[0][k] - scores[1][k]) for k in scores[0]) <= 0.05  # bf16 arithmetic, same answer
    assert main([*args, "--backend", "onnxruntime", "--precision", "bf16"]) == 2
    assert "precision 'bf16' runs on OpenVINO" in capsys.readouterr().err


def test_int8_weights_reduce_range_where_the_kernels_saturate(fake_cpu):
    from clipforge.builder.build_config import QuantizeSection
    from clipforge.builder.stages import reduce_range

    fake_cpu("fpu sse avx2 fma")  # AVX2 alone: u8 x s8 pairs saturate in 16 bits
    assert reduce_range(QuantizeSection(mode="int8-dynamic"))
    assert not reduce_range(QuantizeSection(mode="int8-dynamic", reduce_range=False))
    fake_cpu("fpu sse avx2 fma avx512f avx512bw avx512_vnni")
    assert not reduce_range(QuantizeSection(mode="int8-dynamic"))
    assert reduce_range(QuantizeSection(mode="int8-dynamic", reduce_range=True))
    fake_cpu("")  # flags unknown (not Linux): full range, as before
    assert not reduce_range(QuantizeSection(mode="int8-dynamic"))
    with pytest.raises(InputError, match="reduce_range"):
        QuantizeSection(mode="int8-dynamic", reduce_range="sometimes").check()


def test_warning_when_full_range_int8_weights_run_where_they_saturate(exported, fake_cpu):
    import warnings

    from clipforge.runtime.model import warn_if_cpu_lacks
    from clipforge.specs import Manifest

    manifest = Manifest.load(exported["clip"])
    stage = {"stage": "quantize:int8-dynamic", "reduce_range": False}
    manifest.build = {"roles": {"text-encoder": {"quantize": "int8-dynamic", "stages": [stage]}}}
    fake_cpu("fpu sse avx2 fma")
    with pytest.warns(UserWarning, match=r"int8 weights \(text-encoder\) use the full 8-bit range.*reduce_range"):
        warn_if_cpu_lacks(manifest)
    stage["reduce_range"] = True  # built with 7-bit weights: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_cpu_lacks(manifest)
    stage["reduce_range"] = False
    fake_cpu("fpu sse avx2 fma avx512f avx512_vnni")  # VNNI: 8-bit weights do not saturate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_cpu_lacks(manifest)
