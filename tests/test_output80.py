"""Human output at 80 columns off a terminal: every command's table keeps ids, paths, variant and
encoder names and labels whole (folded onto more lines, never cut with an ellipsis), --json prints the same rows,
a run without rows says so in one line, and a MODEL that is none of the accepted kinds is named in one line.

Commands run in-process (``main``) with stdout captured, so stdout is not a terminal, and COLUMNS=80; one runs in
a subprocess with every stream a pipe and no COLUMNS, where rich falls back to 80 columns by itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from clipforge.cli.main import main
from clipforge.registry import list_models
from clipforge.testing.shapes import noise_folder

WIDTH = 80
LONG_VARIANT = "clip-tiny-fp32-exported-with-a-deliberately-long-variant-name"
OTHER_VARIANT = "clip-tiny-second-variant-whose-name-shares-the-same-long-prefix"
LONG_FOLDER = "a-deliberately-long-folder-name-so-that-every-path-has-to-fold-at-eighty-columns"
LABELS = ["red circle", "blue square", "a photo of a deliberately long label that has to wrap in a narrow column"]


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))


@pytest.fixture(scope="module")
def variants(exported_tiny, tmp_path_factory):
    """The tiny CLIP export under two long folder names (perf names a variant after its folder)."""
    root = tmp_path_factory.mktemp("exports")
    return [shutil.copytree(exported_tiny["clip"], root / name) for name in (LONG_VARIANT, OTHER_VARIANT)]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A labelled folder of 4 images (2 classes) whose paths are longer than 80 columns."""
    return noise_folder(
        tmp_path_factory.mktemp("data") / LONG_FOLDER, classes=("red circle", "blue square"), per_class=2
    )


@pytest.fixture(scope="module")
def index_db(variants, images, tmp_path_factory):
    from clipforge.index import Index

    db = tmp_path_factory.mktemp("db") / f"{LONG_FOLDER}.db"
    with Index(db, str(variants[0])) as idx:
        assert idx.add([images], quiet=True).added == 4
    return db


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def whole(text: str, value: str) -> bool:
    """``value`` appears in ``text`` either on one line or folded: continued on the next lines at the same column
    (rich folds a long cell that way; a break at a space drops the space)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for col in (m.start() for m in re.finditer(re.escape(value[0]), line)):
            rest, j = value, i
            while rest and j < len(lines):
                piece = lines[j][col:]
                n = next((k for k, (a, b) in enumerate(zip(piece, rest)) if a != b), min(len(piece), len(rest)))
                if n == 0:
                    break
                rest, j = rest[n:].lstrip(" "), j + 1
            if not rest:
                return True
    return False


def readable(text: str, values) -> None:
    """Fits 80 columns, nothing cut with an ellipsis, and every value whole."""
    assert text.strip(), "no output"
    assert "…" not in text and "..." not in text, text
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    missing = [v for v in values if not whole(text, str(v))]
    assert not missing, f"not whole: {missing}\n{text}"


def scores(text: str) -> list[str]:
    """The numbers that end the table's lines (the last column), in order."""
    return re.findall(r"(-?\d+\.\d+)$", text, re.M)


def sections(text: str) -> list[str]:
    """The groups of rows after the header rule (separated by a blank line)."""
    body = re.split(r"^─+$", text, flags=re.M)[-1]
    return [g.strip("\n") for g in re.split(r"\n\s*\n", body) if g.strip()]


def test_whole_finds_folded_values_and_rejects_cut_ones():
    folded = "name   score\nabcdef  1.0\nghij\n"
    assert whole(folded, "abcdefghij") and whole(folded, "score")
    assert not whole("abcdef  1.0\nxyz\n", "abcdefghij") and not whole("abc…  1.0\n", "abcdef")


@pytest.mark.slow
def test_models(capsys):
    code, out, _ = run(capsys, "models")
    rows = list_models()
    assert code == 0
    readable(out, [r["name"] for r in rows])
    assert any(len(r["name"]) > 40 for r in rows)  # long hub ids are in the list
    code, js, _ = run(capsys, "models", "--json")
    assert code == 0 and json.loads(js) == rows


def test_models_in_a_pipe_without_columns():
    """Every stream a pipe and no COLUMNS: rich falls back to 80 columns; ids are still whole."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-m", "clipforge.cli.main", "models"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    readable(proc.stdout, [r["name"] for r in list_models()])


@pytest.mark.slow
def test_classify(capsys, variants, images):
    args = ["classify", images, "-m", variants[0], "-l", ",".join(LABELS), "-k", "3"]
    code, out, _ = run(capsys, *args)
    paths = sorted(str(p) for p in images.rglob("*.png"))
    assert code == 0 and all(len(p) > WIDTH for p in paths)
    readable(out, paths + LABELS)
    code, js, _ = run(capsys, *args, "--json")
    rows = json.loads(js)
    assert code == 0 and [r["image"] for r in rows] == paths
    assert scores(out) == [f"{p['score']:.4f}" for r in rows for p in r["predictions"]]
    assert {p["label"] for r in rows for p in r["predictions"]} == set(LABELS)


@pytest.mark.slow
def test_classify_without_readable_images_says_so_in_one_line(capsys, variants, tmp_path):
    bad = tmp_path / LONG_FOLDER
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not an image")
    (bad / "b.jpg").write_bytes(b"")
    code, out, err = run(capsys, "classify", bad, "-m", variants[0], "-l", "cat,dog")
    assert code == 1 and out == ""  # no (empty) table
    assert err.splitlines()[0] == f"no readable images in {bad} (all 2 unreadable):"
    assert str(bad / "a.png") in err and str(bad / "b.jpg") in err
    code, js, _ = run(capsys, "classify", bad, "-m", variants[0], "-l", "cat,dog", "--json")
    assert code == 1 and json.loads(js) == []


@pytest.mark.slow
def test_eval(capsys, variants, images):
    code, out, _ = run(capsys, "eval", "-m", variants[0], "--dataset", images, "-q")
    assert code == 0
    readable(out, [str(images), "clipforge ONNX", "mean recall"])
    code, js, _ = run(capsys, "eval", "-m", variants[0], "--dataset", images, "-q", "--json", "-")
    report = json.loads(js)  # stdout holds the JSON only
    onnx = report["onnx"]
    assert code == 0 and report["source"] == str(images) and onnx["evaluated"] == 4
    row = next(line for line in out.splitlines() if line.startswith("clipforge ONNX")).split()[2:]
    assert row[:5] == [f"{onnx['top1']:.1f}", f"{onnx['top5']:.1f}", f"{onnx['mean_per_class_recall']:.1f}", "4", "0"]


@pytest.mark.slow
def test_eval_retrieval(capsys, variants, images, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"image": {"bytes": png.read_bytes(), "path": None}, "captions": [f"picture of a {png.parent.name}"]}
        for png in sorted(images.rglob("*.png"))
    ]
    pairs = tmp_path / f"{LONG_FOLDER}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pairs)
    args = ["eval", "-m", variants[0], "--task", "zero-shot-retrieval", "--dataset", pairs, "-q"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    readable(out, [str(pairs), "image → text", "text → image"])
    code, js, _ = run(capsys, *args, "--json", "-")
    onnx = json.loads(js)["onnx"]
    for direction, label in (("image_to_text", "image → text"), ("text_to_image", "text → image")):
        line = next(x for x in out.splitlines() if x.startswith(label))
        assert line.split()[-3:] == [f"{onnx[direction][k]:.1f}" for k in ("R@1", "R@5", "R@10")]


@pytest.mark.slow
def test_perf(capsys, variants, tmp_path):
    """Two variants whose names share a long prefix: every row says which variant and encoder it measured; the
    roofline gets its own table."""
    fast = ["--batch-size", "1", "--iterations", "1", "--warmup", "0"]
    code, out, _ = run(
        capsys, "perf", *variants, *fast, "--roofline", "--gemm-size", "64", "--json", tmp_path / "p.json"
    )
    rows = json.loads((tmp_path / "p.json").read_text())
    assert code == 0 and len(rows) == 4
    speed, roofline = out.split("\nroofline: ")
    for table, last in ((speed, ("items_per_s", "peak_rss_mb")), (roofline, ("limit_per_s", "fraction"))):
        readable(table, [LONG_VARIANT, OTHER_VARIANT, "image-encoder", "text-encoder", "onnxruntime fp32"])
        groups = sections(table)
        assert len(groups) == len(rows)
        for group, r in zip(groups, rows):
            assert whole(group, r["variant"]) and whole(group, r["encoder"]), group
            want = [
                f"{r[last[0]]:.1f}",
                f"{r['peak_rss_mb']:.0f}" if last[1] == "peak_rss_mb" else f"{100 * r['fraction']:.1f}",
            ]
            assert group.splitlines()[0].split()[-2:] == want, group
            if table is speed:  # batch, load s, first s (process start -> first result) lead the numbers
                assert group.splitlines()[0].split()[-8:-5] == ["1", f"{r['load_s']:.2f}", f"{r['first_s']:.2f}"]


@pytest.mark.slow
def test_perf_shows_the_path_where_folder_names_collide_and_json_to_stdout(capsys, variants, tmp_path):
    same = []
    for parent in ("run-a", "run-b"):
        (tmp_path / parent).mkdir()
        (tmp_path / parent / "clip").symlink_to(variants[0], target_is_directory=True)
        same.append(tmp_path / parent / "clip")
    fast = ["--batch-size", "1", "--iterations", "1", "--warmup", "0"]
    code, out, _ = run(capsys, "perf", *same, *fast)
    assert code == 0
    readable(out, [str(p) for p in same])
    code, js, _ = run(capsys, "perf", variants[0] / "image-encoder", *fast, "--json", "-")
    assert code == 0 and [(r["variant"], r["encoder"]) for r in json.loads(js)] == [(LONG_VARIANT, "image-encoder")]


@pytest.mark.slow
def test_build_summary(capsys, variants, tmp_path):
    out_dir = tmp_path / LONG_FOLDER
    code, out, err = run(capsys, "build", "-m", variants[0], "-o", out_dir, "-q")
    assert code == 0 and out == ""  # the summary goes to stderr, beside the progress
    report = json.loads((out_dir / "build.json").read_text())
    readable(
        err,
        [str(out_dir), "image-encoder", "text-encoder"]
        + [s["stage"] for info in report["roles"].values() for s in info["stages"]],
    )
    code, out, _ = run(capsys, "build", "-m", variants[0], "-o", out_dir, "-q", "--json")  # unchanged: skipped
    again = json.loads(out)
    assert code == 0 and again["skipped"] and again["path"] == str(out_dir) and again["roles"] == report["roles"]


@pytest.mark.slow
def test_report(capsys, variants, images):
    args = ["report", *variants, "--dataset", images, "--iterations", "1", "--batch-size", "1"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    readable(out, [str(v) for v in variants] + [str(images)])
    code, js, _ = run(capsys, *args, "--json", "-")
    rows = json.loads(js)
    assert code == 0 and [r["build"] for r in rows] == [str(v) for v in variants]
    assert re.findall(r"\s(\d+\.\d)\s+(\d+\.\d)\s+\d+\.\d\s+\d+\.\d$", out, re.M) == [
        (f"{r['top1']:.1f}", f"{r['top5']:.1f}") for r in rows
    ]


@pytest.mark.slow
def test_search(capsys, index_db, images):
    code, out, _ = run(capsys, "search", "--db", index_db, "red circle", "-k", "4")
    paths = sorted(str(p) for p in images.rglob("*.png"))
    assert code == 0
    readable(out, paths)
    code, js, _ = run(capsys, "search", "--db", index_db, "red circle", "-k", "4", "--json")
    hits = json.loads(js)
    assert sorted(h["path"] for h in hits) == paths
    assert re.findall(r"^\s*(-?\d\.\d{4})\s", out, re.M) == [f"{h['score']:.4f}" for h in hits]
    code, out, err = run(capsys, "search", "--db", index_db, "red circle", "--min-score", "1.5")
    assert code == 0 and out == "" and err.strip() == "no results with score >= 1.5"


@pytest.mark.slow
def test_dedup_and_index_print_paths_on_one_line(capsys, index_db, images):
    code, out, err = run(capsys, "dedup", "--db", index_db, "--threshold", "-1")
    paths = sorted(str(p) for p in images.rglob("*.png"))
    assert code == 0 and "…" not in out and all(any(line.endswith(p) for line in out.splitlines()) for p in paths)
    code, js, _ = run(capsys, "dedup", "--db", index_db, "--threshold", "-1", "--json")
    assert sorted(h["path"] for g in json.loads(js) for h in g) == paths
    code, _, err = run(capsys, "index", images, "--db", index_db, "-q")
    assert code == 0 and err.strip().endswith(f"4 image(s) in {index_db}") and len(err.splitlines()) == 1


MODEL_KINDS = ("manifest.json", "config.json", "open_clip_config.json", "hf-hub:", ".pt", "ARCH:FILE", "hub id")


@pytest.mark.slow
def test_model_errors_name_every_kind_and_what_was_found(capsys, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    for name in ("a.txt", "b.bin2", "c.json", "d.md"):
        (junk / name).write_text("x")
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        junk: "a folder with 4 entries (a.txt, b.bin2, c.json and 1 more), no manifest.json/config.json/"
        "open_clip_config.json",
        tmp_path / "notes.txt": "a .txt file of 5 bytes",
        tmp_path / "missing": "does not exist",
    }
    for model, found in cases.items():
        code, out, err = run(capsys, "classify", tmp_path / "x.png", "-l", "a", "-m", model)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert found in err and all(kind in err for kind in MODEL_KINDS), err
    code, _, err = run(capsys, "perf", junk)
    assert code == 2 and "a folder with 4 entries" in err and "manifest.json" in err and "model.onnx" in err
