"""classify / embed commands, torch-free inference, and unreadable images in batch runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from clipforge.cli.main import main


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50 + i, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    return root


@pytest.mark.slow
def test_classify_json(clip_folder, image_dir, capsys):
    code = main(
        [
            "classify",
            str(image_dir),
            "-l",
            "red circle,blue square",
            "-l",
            "dog",
            "-m",
            str(clip_folder),
            "--json",
            "-k",
            "2",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out) == 3
    from clipforge.runtime.model import ZeroShotModel

    want = ZeroShotModel.from_onnx(clip_folder).classify(
        sorted(image_dir.iterdir()), ["red circle", "blue square", "dog"], top_k=2
    )
    assert [r["predictions"] for r in out] == want


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_reported(clip_folder, image_dir, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = image_dir / "img0.png"
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    code = main(
        [
            "classify",
            str(good),
            str(tmp_path / "broken.png"),
            str(truncated),
            "-l",
            "a,b",
            "-m",
            str(clip_folder),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert len(json.loads(captured.out)) == 1
    assert "2 of 3 image(s)" in captured.err and "broken.png" in captured.err and "truncated.png" in captured.err


@pytest.mark.slow
def test_empty_and_duplicate_labels_are_one_line_errors(clip_folder, image_dir, capsys):
    code = main(["classify", str(image_dir), "-l", "cat", "-l", " ", "-m", str(clip_folder)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "label(s) at position [1] are empty" in err and "\n" not in err
    code = main(["classify", str(image_dir), "-l", "a,a", "-m", str(clip_folder)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "duplicate label(s) ['a']" in err and "\n" not in err


@pytest.mark.slow
def test_warnings_are_one_line_on_stderr(clip_folder, image_dir, tmp_path, fake_cpu, capsys):
    """A warning met by a command (here: a full-range int8 build on a CPU whose int8 kernels saturate) is one
    ``warning:`` line, not Python's file/line/source format; the JSON on stdout is untouched."""
    folder = shutil.copytree(clip_folder, tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["build"] = {"roles": {"text-encoder": {"stages": [{"stage": "quantize:int8-dynamic"}]}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    fake_cpu("fpu sse avx2 fma")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["classify", str(image_dir / "img0.png"), "-l", "red,blue", "-m", str(folder), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and len(json.loads(captured.out)) == 1
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: this build's int8 weights (text-encoder)"), lines
    assert "UserWarning" not in captured.err and ".py:" not in captured.err


@pytest.mark.slow
def test_embed_npy_and_parquet(clip_folder, image_dir, tmp_path):
    import pyarrow.parquet as pq

    assert main(["embed", str(image_dir), "-o", str(tmp_path / "e.npy"), "-m", str(clip_folder)]) == 0
    vectors = np.load(tmp_path / "e.npy")
    names = (tmp_path / "e.names.txt").read_text().splitlines()
    assert vectors.shape == (3, 16) and len(names) == 3 and names[0].endswith("img0.png")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert main(["embed", "--text", "a cat", "a dog", "-o", str(tmp_path / "t.parquet"), "-m", str(clip_folder)]) == 0
    table = pq.read_table(tmp_path / "t.parquet").to_pydict()
    assert table["text"] == ["a cat", "a dog"] and len(table["embedding"][0]) == 16


def test_classify_never_imports_torch_or_transformers(clip_folder, image_dir):
    code = f"""
import sys
from clipforge.runtime.model import ZeroShotModel
m = ZeroShotModel.from_onnx({str(clip_folder)!r})
r = m.classify([{str(image_dir / "img0.png")!r}], ["red circle", "dog"], top_k=1)
e = m.embed_texts(["a cat"])
assert r and e.shape == (1, 16)
from clipforge.cli.main import main
assert main(["classify", {str(image_dir)!r}, "-l", "a,b", "-m", {str(clip_folder)!r}, "--json"]) == 0
bad = [m for m in ("torch", "transformers") if m in sys.modules]
print("LOADED", bad)
sys.exit(1 if bad else 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_console_entry_exits_with_the_commands_code_and_runs_atexit(tmp_path):
    """``clipforge`` (``run``) freezes the garbage collector before exiting: the exit code, the one-line error and
    the ``atexit`` handlers are those of a plain exit."""
    code = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran'));"
        "from clipforge.cli.main import run; sys.argv[0] = 'clipforge'; run()"
    )
    missing = tmp_path / "none.db"
    done = subprocess.run(
        [sys.executable, "-c", code, "search", "a dog", "--db", str(missing)], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == "atexit ran\n"
    assert done.stderr.startswith(f"error: database {missing} does not exist") and done.stderr.count("\n") == 1
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage" in done.stdout and done.stdout.endswith("atexit ran\n")
