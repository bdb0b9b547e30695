"""What the start paths import, each checked in a fresh interpreter: ``import clipforge`` plus classifying with an
exported folder, and the CLI (its module and ``clipforge --help``, which registers every command), must not import
torch, transformers, open_clip, onnx or the optional engines (Ray, OpenVINO, PostgreSQL, the HTTP service,
Arrow). Those are imported inside the functions that need them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).parents[1] / "src")
HEAVY = ("torch", "transformers", "open_clip", "onnx", "ray", "openvino", "psycopg", "fastapi", "pyarrow")
REPORT = f"""
import json, sys
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))), file=sys.stderr)
"""

CLASSIFY = """
import clipforge
from PIL import Image
model = clipforge.ZeroShotModel.from_onnx({folder!r})
result = model.classify([Image.new("RGB", (40, 30), (200, 10, 10))], ["red", "blue"])
print(json.dumps(sorted(r["label"] for r in result[0])))
"""

CLI = """
from clipforge.cli.main import main
{report}
code = main(["--help"])
print(json.dumps(code))
"""


def _run(code: str) -> tuple[list[str], list[list[str]]]:
    """stdout lines (JSON each) and the heavy packages each REPORT found (JSON lines on stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("[")]
    return done.stdout.splitlines(), reports


def test_classifying_with_an_exported_folder_imports_no_heavy_package(clip_folder):
    out, reports = _run("import json\n" + CLASSIFY.format(folder=str(clip_folder)) + REPORT)
    assert json.loads(out[-1]) == ["blue", "red"]  # it did classify
    assert reports == [[]]


def test_the_cli_module_and_its_help_import_no_heavy_package():
    out, reports = _run("import json\n" + CLI.format(report=REPORT) + REPORT)
    assert "Usage" in "\n".join(out) and json.loads(out[-1]) == 0  # the help was printed
    assert reports == [[], []]  # after importing clipforge.cli.main, then after every command registered


def test_graph_element_types_are_onnx_values():
    """The pipeline graph modules spell ONNX's element types out (so they import without onnx)."""
    from onnx import TensorProto

    from clipforge.pipeline import _graph

    for name in ("FLOAT", "UINT8", "INT32", "INT64", "STRING", "DOUBLE"):
        assert getattr(_graph, name) == getattr(TensorProto, name), name


ONE_COMMAND = """
import json, sys
from clipforge.cli.main import COMMAND_MODULES, main
code = main(["classify", "--help"])
loaded = [c for c in COMMAND_MODULES if "clipforge.cli." + c.replace("-", "_") in sys.modules]
print(json.dumps([code, loaded]))
"""


def test_a_command_imports_only_its_own_command_module():
    out, _ = _run(ONE_COMMAND)
    assert "Usage" in "\n".join(out) and json.loads(out[-1]) == [0, ["classify"]]
