"""perf and report commands: every row measured in a subprocess; JSON, table and charts (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from clipforge.cli.main import main
from clipforge.errors import InputError
from clipforge.export import ExportOptions, export_model
from clipforge.perf.sweep import targets_for


@pytest.fixture(scope="module")
def folders(tiny_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("perf")
    dyn = export_model(tiny_clip, root / "dyn", show_progress=False).path
    static = export_model(
        tiny_clip, root / "static", ExportOptions(static=True, batch_size=2), show_progress=False
    ).path
    return dyn, static


@pytest.mark.slow
def test_perf_json_and_plot(folders, tiny_clip, tmp_path):
    dyn, static = folders
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    assert (
        main(
            [
                "perf",
                str(dyn),
                str(static / "image-encoder" / "model.onnx"),
                "--batch-size",
                "1,4",
                "--iterations",
                "2",
                "--warmup",
                "1",
                "--baseline",
                "torch",
                "--model-id",
                str(tiny_clip),
                "--json",
                str(out),
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * 2 + 2 * 2 + 1 * 2  # torch (2 encoders), dyn (2 encoders), static image; x 2 batches
    assert {r["variant"] for r in rows} == {"pytorch", "dyn", "static"}
    assert all(r["items_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert all(r["load_s"] < r["first_s"] < 60 for r in rows)  # process start -> first result includes the load
    assert [r["batch"] for r in rows if r["variant"] == "static"] == [2, 2]  # the graph's fixed batch
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_percentiles_known_answer():
    from clipforge.perf.worker import _percentiles

    # 1..100 ms; numpy's linear interpolation: p50 = 50.5, p90 = 90.1, p99 = 99.01
    got = _percentiles([i / 1000 for i in range(100, 0, -1)])
    assert got == pytest.approx({"p50_ms": 50.5, "p90_ms": 90.1, "p99_ms": 99.01})


@pytest.mark.slow
def test_targets_and_errors(folders, tmp_path, capsys):
    dyn, _ = folders
    assert [t.encoder for t in targets_for(dyn)] == ["image-encoder", "text-encoder"]
    assert targets_for(dyn / "text-encoder")[0].encoder == "text-encoder"
    with pytest.raises(InputError):
        targets_for(tmp_path)
    assert main(["perf", str(dyn), "--batch-size", "a,b"]) == 2
    assert "comma-separated" in capsys.readouterr().err


@pytest.mark.slow
def test_a_checkpoint_is_exported_once_then_measured(tiny_clip, capsys):
    from pathlib import Path

    targets = targets_for(tiny_clip)
    assert [t.encoder for t in targets] == ["image-encoder", "text-encoder"]
    assert targets[0].variant == str(tiny_clip) and Path(targets[0].model).is_file()
    assert targets_for(tiny_clip)[0].model == targets[0].model  # the resolver's cache: no second export
    assert main(["perf", "no/such-model-here", "--batch-size", "1"]) == 2
    assert "no/such-model-here" in capsys.readouterr().err


@pytest.mark.slow
def test_report_accuracy_vs_speed(trained_clip, shapes_dataset, tmp_path):
    folder = export_model(trained_clip, tmp_path / "fp32", show_progress=False).path
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert (
        main(
            [
                "report",
                str(folder),
                "--dataset",
                str(shapes_dataset.root),
                "--samples",
                "40",
                "--iterations",
                "2",
                "--plot",
                str(png),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    assert rows[0]["top1"] > 50 and rows[0]["images_per_s"] > 0 and png.is_file()
