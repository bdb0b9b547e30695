"""Temporary folders and files of killed runs: each carries its owner (pid + start time) in its name, and the
next writer of the same output removes those whose owner is gone - never a live run's. Real processes, killed
with SIGKILL through the fault-injection hook ``CLIPFORGE_DEBUG_KILL``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clipforge._io import atomic_dir, atomic_file, owner_tag, sweep

SRC = str(Path(__file__).parents[1] / "src")
WRITE_DIR = """
import os, signal, sys
from clipforge._io import atomic_dir
with atomic_dir(sys.argv[1], force=True) as tmp:
    (tmp / "part").write_text("x")
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("ready", flush=True)
    sys.stdin.read()  # a live owner: holds its folder until the test closes stdin
"""
WRITE_FILE = """
import os, signal, sys
from clipforge._io import atomic_file
with atomic_file(sys.argv[1]) as tmp:
    tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _python(code: str, *args: str, **kw):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kw)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_killed_owners_temp_folders_are_swept_and_a_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    live = _python(WRITE_DIR, str(out), "wait", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        assert _python(WRITE_DIR, str(out), "kill").wait(60) == -signal.SIGKILL
        live_tmp = [n for n in _hidden(tmp_path) if n.startswith(f".out.tmp-{live.pid}.")]
        assert len(live_tmp) == 1 and len(_hidden(tmp_path)) == 2, _hidden(tmp_path)
        legacy = tmp_path / ".out.tmp-abc123"  # no owner in the name: not ours to judge
        legacy.mkdir()
        with atomic_dir(out, force=True) as tmp:
            (tmp / "done").write_text("ok")
        assert (out / "done").is_file()
        assert _hidden(tmp_path) == sorted([live_tmp[0], legacy.name])
    finally:
        live.kill()
        live.wait(30)
    assert sweep(tmp_path, "out") == [tmp_path / live_tmp[0]]


@pytest.mark.slow
def test_a_killed_writers_temp_file_is_swept(tmp_path):
    target = tmp_path / "embeddings.npy"
    assert _python(WRITE_FILE, str(target)).wait(60) == -signal.SIGKILL
    assert len(_hidden(tmp_path)) == 1
    with atomic_file(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and _hidden(tmp_path) == []


@pytest.mark.parametrize("stage", ["replace", "replaced"])
@pytest.mark.slow
def test_a_folder_replaced_when_the_writer_is_killed_leaves_nothing_after_a_rerun(tmp_path, stage):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC, "CLIPFORGE_DEBUG_KILL": stage}
    killed = subprocess.run([sys.executable, "-c", WRITE_DIR, str(out), "go"], env=env, input="", timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert any(".old-" in n for n in _hidden(tmp_path)), _hidden(tmp_path)
    assert sweep(tmp_path, "out") and _hidden(tmp_path) == []


def test_owner_tag_names_this_process():
    pid, start = owner_tag().split(".")
    assert int(pid) == os.getpid() and int(start) > 0


@pytest.mark.slow
def test_a_build_killed_while_replacing_its_output_leaves_no_hidden_folder(tiny_clip, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "clipforge.cli.main", "build", "-m", str(tiny_clip), "-o", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": SRC}
    assert subprocess.run([*cmd, "--quantize", "none"], env=env, capture_output=True, timeout=300).returncode == 0
    dynamic = [*cmd, "--quantize", "int8-dynamic"]
    killed = subprocess.run(dynamic, env={**env, "CLIPFORGE_DEBUG_KILL": "replaced"}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL and _hidden(tmp_path), _hidden(tmp_path)
    rerun = subprocess.run(dynamic, env=env, capture_output=True, text=True, timeout=300)  # up to date: skipped
    assert rerun.returncode == 0, rerun.stderr
    assert _hidden(tmp_path) == [] and (out / "manifest.json").is_file()
