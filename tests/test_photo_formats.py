"""The files photo libraries hold: HEIC (pillow-heif writes it here), DNG camera RAW (written by
clipforge.testing.photos: a Bayer mosaic LibRaw demosaics, with or without an embedded preview JPEG), EXIF
orientation, in the runtime, the index and the server alike."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.index import Index
from clipforge.runtime.images import IMAGE_SUFFIXES, decode_photo, load_image
from clipforge.testing.photos import write_dng, write_heic, write_jpeg

pytest.importorskip("pillow_heif")
pytest.importorskip("rawpy")

LABELS = ["red circle", "blue square", "green cross", "yellow triangle"]


def _cos(a, b) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture
def library(shapes_dataset, tmp_path):
    """One photo per label in each format: HEIC, DNG with a preview, DNG without one, EXIF-rotated JPEG."""
    root = tmp_path / "library"
    root.mkdir()
    sources = {}
    for label in LABELS:
        source = Image.open(next((shapes_dataset.folder("test") / label).glob("0.*"))).convert("RGB")
        stem = label.replace(" ", "-")
        sources[stem] = source
        write_heic(root / f"{stem}.heic", source)
        write_dng(root / f"{stem}-preview.dng", source)
        write_dng(root / f"{stem}-mosaic.dng", source, preview=False)
        rotated = source.transpose(Image.Transpose.ROTATE_90)  # stored on its side; orientation 6 turns it back
        write_jpeg(root / f"{stem}-rotated.jpg", rotated, orientation=6)
    return root, sources


def test_each_format_decodes_upright_and_embeds_like_its_source(library, loaded_model):
    root, sources = library
    for stem, source in sources.items():
        expected = loaded_model.embed_images([source])[0]
        preview = io.BytesIO()
        source.save(preview, "JPEG", quality=95)  # the preview write_dng embeds
        exact = loaded_model.embed_images([Image.open(io.BytesIO(preview.getvalue()))])[0]
        got = loaded_model.embed_images(
            [root / f"{stem}.heic", root / f"{stem}-preview.dng", root / f"{stem}-mosaic.dng"]
        )
        assert np.allclose(got[1], exact, atol=1e-5)  # the DNG's picture is its preview JPEG, bit for bit
        for vector in (got[0], got[2]):  # HEIC (lossy) and LibRaw's demosaiced mosaic
            assert _cos(vector, expected) > 0.97, stem
        for name in (f"{stem}.heic", f"{stem}-preview.dng", f"{stem}-mosaic.dng", f"{stem}-rotated.jpg"):
            assert load_image(root / name).size == source.size, name
        rotated = root / f"{stem}-rotated.jpg"
        upright = loaded_model.embed_images([rotated])[0]
        sideways = loaded_model.embed_images([Image.open(rotated).convert("RGB")])[0]  # orientation ignored
        # upright is the closer one (a circle seen sideways can still score 0.99 with the tiny model)
        assert _cos(upright, expected) > max(0.99, _cos(sideways, expected)), stem


def test_heic_and_raw_files_index_search_and_classify(library, loaded_model, tmp_path):
    root, _ = library
    with Index(tmp_path / "lib.db", loaded_model) as idx:
        summary = idx.add([root])
        assert summary.added == 4 * len(LABELS) and not summary.unreadable, summary
        for label in LABELS:
            stem = label.replace(" ", "-")
            hits = idx.search(f"a photo of a {label}.", k=4)
            assert {Path(h.path).name for h in hits} == {
                f"{stem}.heic",
                f"{stem}-preview.dng",
                f"{stem}-mosaic.dng",
                f"{stem}-rotated.jpg",
            }, label
        for row in idx.classify(LABELS):  # from the stored vectors
            assert Path(row["path"]).name.startswith(row["label"].replace(" ", "-")), row
    result = loaded_model.classify([root / "red-circle.heic", root / "blue-square-mosaic.dng"], LABELS)
    assert [r[0]["label"] for r in result] == ["red circle", "blue square"]


def test_served_heic_and_raw_files_are_jpeg_renderings(library, loaded_model, tmp_path):
    from fastapi.testclient import TestClient

    from clipforge.serve import ServeSettings, create_app

    root, sources = library
    idx = Index(tmp_path / "served.db", loaded_model)
    idx.add([root / "red-circle.heic", root / "red-circle-mosaic.dng", root / "red-circle-rotated.jpg"])
    ids = {Path(path).name: int(i) for i, path in zip(*idx.backend.vectors()[:2])}
    try:
        with TestClient(create_app(loaded_model, idx, ServeSettings())) as client:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            for name in ("red-circle.heic", "red-circle-mosaic.dng"):
                for suffix in ("", "/thumbnail"):
                    reply = client.get(f"/v1/images/{ids[name]}{suffix}")
                    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg", name
                    shown = Image.open(io.BytesIO(reply.content))
                    assert shown.format == "JPEG" and shown.width / shown.height == pytest.approx(
                        sources["red-circle"].width / sources["red-circle"].height, rel=0.05
                    )
            jpeg = client.get(f"/v1/images/{ids['red-circle-rotated.jpg']}")  # a browser format: the file itself
            assert jpeg.content == (root / "red-circle-rotated.jpg").read_bytes()
    finally:
        idx.close()


def test_a_missing_photos_extra_is_one_line_naming_it(tmp_path):
    image = Image.new("RGB", (32, 24), (10, 200, 30))
    heic, dng = write_heic(tmp_path / "a.heic", image), write_dng(tmp_path / "b.dng", image)
    code = (
        "import sys; sys.modules['pillow_heif'] = None; sys.modules['rawpy'] = None\n"
        "from clipforge.errors import InputError\n"
        "from clipforge.runtime.images import load_image\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_image(path)\n"
        "    except InputError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(heic), str(dng)], capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert "HEIC" in lines[0] and "clipforge[photos]" in lines[0] and "pillow-heif" in lines[0]
    assert "RAW" in lines[1] and "clipforge[photos]" in lines[1] and "rawpy" in lines[1]


def test_a_broken_raw_file_is_an_input_error(tmp_path):
    bad = tmp_path / "broken.nef"
    bad.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(InputError, match=r"broken\.nef is unreadable"):
        load_image(bad)


def test_cli_classify_and_embed_take_heic_and_raw_files_from_a_folder(library, index_model, loaded_model, capsys):
    root, _ = library
    code = main(["classify", str(root), "-m", str(index_model), "--labels", ",".join(LABELS), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 4 * len(LABELS)
    labels = {Path(r["image"]).name: r["predictions"][0]["label"] for r in rows}
    assert {Path(n).suffix for n in labels} == {".heic", ".dng", ".jpg"}
    assert all(name.startswith(label.replace(" ", "-")) for name, label in labels.items()), labels
    out = root.parent / "embeddings.npy"
    assert main(["embed", str(root), "-o", str(out), "-m", str(index_model)]) == 0
    names = Path(str(out).replace(".npy", ".names.txt")).read_text().split("\n")
    vectors = np.load(out)
    heic = names.index(str(root / "red-circle.heic"))
    np.testing.assert_allclose(vectors[heic], loaded_model.embed_images([root / "red-circle.heic"])[0], atol=1e-5)
    assert sum(n.endswith(".dng") for n in names) == 2 * len(LABELS)


def test_heic_metadata_and_avif(shapes_dataset, tmp_path):
    source = Image.open(next((shapes_dataset.folder("test") / "red circle").glob("0.*"))).convert("RGB")
    heic = write_heic(
        tmp_path / "a.heic",
        source,
        taken=datetime(2017, 9, 19, 8, 5, 1),
        gps=(-33.8568, 151.2153),
        camera=("Apple", "iPhone 8"),
    )
    image, info = decode_photo(heic)
    assert image.size == source.size and (info.taken, info.taken_from) == ("2017-09-19T08:05:01", "exif")
    assert (info.make, info.model) == ("Apple", "iPhone 8")
    assert info.lat == pytest.approx(-33.8568, abs=1e-5) and info.lon == pytest.approx(151.2153, abs=1e-5)
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF plugin (Pillow >= 11.3 has)")
    source.save(tmp_path / "b.avif", quality=95)
    assert ".avif" in IMAGE_SUFFIXES
    decoded = np.asarray(load_image(tmp_path / "b.avif"), np.float64)
    assert decoded.shape == np.asarray(source).shape and np.abs(decoded - np.asarray(source)).mean() < 8
