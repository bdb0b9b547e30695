"""``clipforge demo``, the README's main job, end to end (on the session's cached trained fixture)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipforge.cli.main import main


@pytest.mark.slow
def test_demo_runs_offline_and_agrees_with_itself(fixture_cache, trained_clip, tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "fixtures").symlink_to(Path(fixture_cache).resolve(), target_is_directory=True)  # reuse the training
    assert main(["demo", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    top1 = dict(re.findall(r"^(fp32|int8-static)\s+top-1 ([\d.]+)%", stdout, re.M))
    assert float(top1["fp32"]) >= 80 and abs(float(top1["int8-static"]) - float(top1["fp32"])) <= 2
    runtime = re.findall(r"^\s*(\S.*?/\d+\.\w+): (.+?) [\d.]+, ", stdout, re.M)
    pipeline = re.findall(r"^\s*(\S.*?/\d+\.\w+): (.+) \(onnxruntime \+ extensions only\)$", stdout, re.M)
    assert len(runtime) == len(pipeline) == 3
    assert runtime == pipeline  # the pipeline graphs pick the runtime's top label for every image
    assert {"clip-fp32", "clip-int8", "pipeline"} <= {p.name for p in out.iterdir()}
