"""The fault-injection hook (``clipforge._faults``): ``CLIPFORGE_DEBUG_KILL=STAGE[:N[:MARKER]]`` SIGKILLs a real
process at the N-th time it reaches STAGE, and with a MARKER only the process that creates it first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).parents[1] / "src")
REACH = """
import sys
from clipforge._faults import kill_point
for n in range(1, 4):
    kill_point(sys.argv[1])
    print(n, flush=True)
"""


def _reach(stage: str, spec: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CLIPFORGE_DEBUG_KILL"}
    env["PYTHONPATH"] = SRC
    if spec is not None:
        env["CLIPFORGE_DEBUG_KILL"] = spec
    return subprocess.run([sys.executable, "-c", REACH, stage], env=env, capture_output=True, text=True, timeout=60)


def test_a_stage_kills_the_first_time_it_is_reached():
    run = _reach("replace", "replace")
    assert run.returncode == -signal.SIGKILL and run.stdout == ""


def test_a_count_kills_the_nth_time():
    run = _reach("batch", "batch:2")
    assert run.returncode == -signal.SIGKILL and run.stdout.split() == ["1"]


def test_other_stages_and_no_spec_run_through():
    for spec in (None, "", "replaced", "batch:2"):
        run = _reach("replace", spec)
        assert run.returncode == 0 and run.stdout.split() == ["1", "2", "3"], spec


def test_a_marker_lets_only_the_first_process_die(tmp_path):
    marker = tmp_path / "died"
    first, second = _reach("batch", f"batch:1:{marker}"), _reach("batch", f"batch:1:{marker}")
    assert first.returncode == -signal.SIGKILL and marker.exists()
    assert second.returncode == 0 and second.stdout.split() == ["1", "2", "3"]
