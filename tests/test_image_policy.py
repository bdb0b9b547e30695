"""One image policy for the library, the CLI, the indexer and the server: the same sizes accepted, the same
words for a refused or unreadable image, and the resize bounded for thin images (peak memory measured)."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipforge.errors import InputError
from clipforge.index.walker import Decoder, FileState
from clipforge.runtime.image_policy import ImagePolicy, ImageTooLargeError
from clipforge.runtime.images import load_image, preprocess, resized_pixels
from clipforge.serve.decoding import decode_pixels
from clipforge.serve.errors import ApiError
from clipforge.serve.settings import ServeSettings
from clipforge.specs import ImageSpec

MEAN = (0.5, 0.5, 0.5)
CLIP_224 = ImageSpec("shortest_edge", (224, 224), (224, 224), 3, 1 / 255, MEAN, MEAN)


def _png(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _declared(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (valid CRC); the pixels are never there."""
    data = bytearray(_png(16, 16))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _walker_error(tmp_path, data: bytes, name: str = "img.png") -> str | None:
    path = tmp_path / name
    path.write_bytes(data)
    decoder = Decoder(CLIP_224, exact=True, threads=1)
    try:
        decoded = decoder.submit([(FileState(str(path), len(data), 0.0), None)])[0].result()
    finally:
        decoder.close()
    return decoded.error


def _server_error(data: bytes, field: str = "input[2]", **settings) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode_pixels(data, field, CLIP_224, ServeSettings(**settings))
    return info.value


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (20_000, 20_000), (9000, 6000)])
def test_a_declared_bomb_is_refused_in_the_same_words_everywhere(tmp_path, width, height):
    data = _declared(width, height)
    with pytest.raises(ImageTooLargeError) as info:
        load_image(data, name="request body")
    library = str(info.value)
    assert "over the limit of 50.0 Mpx (CLIPFORGE_MAX_IMAGE_PIXELS); downscale it" in library
    served = _server_error(data)
    assert served.status == 413 and served.message == library.replace("request body", "input[2]")
    assert _walker_error(tmp_path, data) == library.replace("request body", str(tmp_path / "img.png"))


def test_the_limit_comes_from_the_environment_and_the_server_settings(monkeypatch):
    data = _png(300, 200)
    monkeypatch.setenv("CLIPFORGE_MAX_IMAGE_PIXELS", "50000")
    with pytest.raises(ImageTooLargeError, match=r"image x is 300x200 = 0.1 Mpx, over the limit of 0.1 Mpx"):
        load_image(data, name="x")
    assert _server_error(data).status == 413
    assert decode_pixels(data, "input[0]", CLIP_224, ServeSettings(max_image_pixels=60_000)).shape == (3, 224, 224)
    monkeypatch.setenv("CLIPFORGE_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="CLIPFORGE_MAX_IMAGE_PIXELS='lots' is not an integer"):
        ImagePolicy.from_env()
    with pytest.raises(InputError, match="max_pixels must be a positive integer"):
        ImagePolicy(max_pixels=0)


@pytest.mark.parametrize("size", [(7, 300), (1, 1), (300, 7)])
def test_small_and_thin_images_are_accepted_by_library_and_server_alike(size):
    data = _png(*size)
    want = preprocess([data], CLIP_224)[0]
    np.testing.assert_array_equal(decode_pixels(data, "input[0]", CLIP_224, ServeSettings()), want)


def test_unreadable_images_name_the_culprit_not_a_stream(tmp_path):
    with pytest.raises(InputError) as info:
        load_image(b"no image here", name="input[2]")
    assert "image input[2] is unreadable" in str(info.value) and "BytesIO" not in str(info.value)
    served = _server_error(_png(40, 40)[:60])
    assert served.status == 422 and "input[2]" in served.message and "BytesIO" not in served.message
    error = _walker_error(tmp_path, b"no image here", "notes.png")
    assert str(tmp_path / "notes.png") in error and "BytesIO" not in error


def test_an_animated_gif_is_its_first_frame():
    frames = [Image.new("RGB", (32, 24), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert np.asarray(load_image(out.getvalue())).reshape(-1, 3).tolist()[0] == [255, 0, 0]
    np.testing.assert_array_equal(
        decode_pixels(out.getvalue(), "input[0]", CLIP_224, ServeSettings()), preprocess([frames[0]], CLIP_224)[0]
    )


SPECS = {
    "hf": CLIP_224,
    "hf-bilinear-odd": ImageSpec("shortest_edge", (37, 37), (30, 31), 2, 1 / 255, MEAN, MEAN),
    "open_clip": ImageSpec("shortest_edge", (224, 224), (224, 224), 3, 1 / 255, MEAN, MEAN, convention="torchvision"),
    "open_clip-fit_shortest": ImageSpec(
        "fit_shortest", (60, 45), None, 3, 1 / 255, MEAN, MEAN, convention="torchvision"
    ),
}


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("size", [(7, 300), (13, 1000), (600, 9), (41, 777)])
def test_the_bounded_resize_equals_the_full_resize(spec, size):
    """Over ``max_resized_pixels`` only the window the crop keeps is resized: within one level of the full
    resize (float32 box coordinates in Pillow), and the full resize below the bound (bit-identical to HF)."""
    image = Image.open(io.BytesIO(_png(*size, seed=sum(size)))).convert("RGB")
    full = resized_pixels(image, SPECS[spec], ImagePolicy(max_resized_pixels=10**9)).astype(int)
    window = resized_pixels(image, SPECS[spec], ImagePolicy(max_resized_pixels=1)).astype(int)
    assert full.shape == window.shape and np.abs(full - window).max() <= 1


def test_without_a_crop_an_oversized_resize_is_refused():
    spec = ImageSpec("shortest_edge", (224, 224), None, 3, 1 / 255, MEAN, MEAN)
    with pytest.raises(InputError, match=r"resized to 224x9600 = 2.2 Mpx .*CLIPFORGE_MAX_RESIZED_PIXELS"):
        resized_pixels(Image.new("RGB", (7, 300)), spec, ImagePolicy(max_resized_pixels=1_000_000))


PEAK = """
import io, os, sys
from PIL import Image
from clipforge.index.walker import Decoder, FileState
from clipforge.runtime.images import preprocess
from clipforge.serve.decoding import decode_pixels
from clipforge.serve.settings import ServeSettings
from clipforge.specs import ImageSpec
path, which = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
spec = ImageSpec("shortest_edge", (224, 224), (224, 224), 3, 1 / 255, (0.5,) * 3, (0.5,) * 3)
if which == "library":
    out = preprocess([path], spec)
elif which == "server":
    out = decode_pixels(data, "input[0]", spec, ServeSettings())
else:
    d = Decoder(spec, exact=True, threads=1)
    out = d.submit([(FileState(path, len(data), 0.0), None)])[0].result().pixels
    d.close()
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(out.shape, int(peak) // 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM needs Linux /proc")
def test_a_thin_image_costs_its_pixels_not_its_resize(tmp_path):
    """An 8x4,000,000 PNG (70 KB): its shortest-edge resize would be 224x112,000,000; every entry point embeds
    it within 500 MB peak RSS (measured in a fresh process each)."""
    path = tmp_path / "thin.png"
    Image.new("L", (8, 4_000_000), 128).save(path, "PNG")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for which in ("library", "server", "indexer"):
        script = textwrap.dedent(PEAK)
        run = subprocess.run(
            [sys.executable, "-c", script, str(path), which],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        shape, peak_mb = run.stdout.rsplit(" ", 1)
        assert "224, 224" in shape and int(peak_mb) < 500, (which, run.stdout)


# --- every entry point: the same images accepted, the same words for a refused one ---------------------------
def test_thin_tiny_and_bomb_images_through_library_cli_index_and_server(loaded_model, index_model, tmp_path, capsys):
    """A 7x300 and a 1x1 PNG embed equally through ``ZeroShotModel``, ``clipforge classify``/``index`` and
    ``/v1/embeddings``; a header declaring 100,000x100,000 is refused by each in the same words."""
    from fastapi.testclient import TestClient

    from clipforge.cli.main import main
    from clipforge.index import Index
    from clipforge.serve import create_app

    photos = tmp_path / "photos"
    photos.mkdir()
    files = {"thin.png": _png(7, 300), "dot.png": _png(1, 1), "bomb.png": _declared(100_000, 100_000)}
    for name, data in files.items():
        (photos / name).write_bytes(data)
    good = [photos / "thin.png", photos / "dot.png"]
    want = loaded_model.embed_images([str(p) for p in good])
    with pytest.raises(ImageTooLargeError) as info:
        loaded_model.embed_images([str(photos / "bomb.png")])
    words = str(info.value).split(" is ", 1)[1]  # the part after the culprit's name

    capsys.readouterr()
    assert main(["classify", str(photos), "-l", "a,b", "-m", str(index_model), "--json"]) == 1
    out = capsys.readouterr()
    assert sorted(Path(r["image"]).name for r in json.loads(out.out)) == ["dot.png", "thin.png"]
    assert words in " ".join(out.err.split())

    with Index(tmp_path / "i.db", loaded_model) as idx:
        summary = idx.add(photos, exact_decode=True)
        assert summary.added == 2 and [words in reason for _, reason in summary.unreadable] == [True]
        stored = {Path(p).name: v for p, v in zip(*idx.backend.vectors()[1:])}
    np.testing.assert_allclose([stored["thin.png"], stored["dot.png"]], want, atol=1e-5)

    with TestClient(create_app(loaded_model)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        body = {"input": [base64.b64encode(files[n]).decode() for n in ("thin.png", "dot.png")], "modality": "image"}
        reply = client.post("/v1/embeddings", json=body)
        assert reply.status_code == 200, reply.text
        got = [d["embedding"] for d in sorted(reply.json()["data"], key=lambda d: d["index"])]
        np.testing.assert_allclose(got, want, atol=1e-5)
        body["input"].append(base64.b64encode(files["bomb.png"]).decode())
        error = client.post("/v1/embeddings", json=body).json()["error"]
        assert (error["status"], error["field"], error["message"]) == (413, "input[2]", f"image input[2] is {words}")
