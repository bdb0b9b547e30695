"""clipforge's torchvision guard in every import order, each in a fresh interpreter: transformers imported first
(``onnxruntime_extensions`` does that), torchvision's import already failed half-way, and torchvision imported
directly. With the registry's CUDA torchvision beside a CPU torch, an unguarded import fails with
"operator torchvision::nms does not exist"; a torchvision that imports on its own is left alone."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).parents[1] / "src")
CHECK = (
    "import torchvision.transforms, clipforge._torchvision as g; "
    "assert g._state in ('plain', 'patched'), g._state; print('state', g._state)"
)
ORDERS = {
    "transformers imported first": (
        "from onnxruntime_extensions import get_library_path\n"
        "import clipforge\n"
        "from transformers import AutoImageProcessor\n"
    ),
    "torchvision failed half-way before clipforge": (
        "from onnxruntime_extensions import get_library_path\n"
        "try:\n"
        "    from transformers import AutoImageProcessor\n"
        "except Exception:\n"
        "    pass\n"
        "import clipforge\n"
        "from transformers import AutoImageProcessor\n"
    ),
    "torchvision imported directly": "import clipforge\nimport torchvision\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("order", list(ORDERS))
def test_torchvision_imports_in_any_order(order):
    for package in ("torchvision", "transformers", "onnxruntime_extensions"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", ORDERS[order] + CHECK], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "state" in done.stdout
