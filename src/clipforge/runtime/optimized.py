"""onnxruntime's optimised graph, saved beside an encoder so that a session on the same kind of machine skips
graph optimisation (~30% of session creation for a B/32 encoder; see benchmarks/bench_startup.py --sessions).

onnxruntime's "all" level writes hardware-specific kernels and layouts, so the saved graph is only used where
it was made: same onnxruntime version, execution provider and CPU matrix flags, and the same source graph
(by size). Anywhere else the portable ``model.onnx`` is loaded and optimised as usual. Files, per encoder:
``model.optimized.onnx`` (+ ``.data``, its weights) and ``model.optimized.json`` (the key; written last, so
a half-written pair is never used). No torch, no transformers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from clipforge._io import temp_dir
from clipforge.runtime import cpu

SUFFIX = ".optimized"


def paths(model: Path) -> tuple[Path, Path, Path]:
    """(optimised graph, its weights, its key) for the encoder graph ``model``."""
    graph = model.with_name(model.stem + SUFFIX + ".onnx")
    return graph, graph.with_name(graph.name + ".data"), model.with_name(model.stem + SUFFIX + ".json")


def key(model: Path, ep: str) -> dict:
    """What the saved graph depends on."""
    import onnxruntime as ort

    return {
        "onnxruntime": ort.__version__,
        "ep": ep,
        "cpu_flags": cpu.relevant_flags(),
        "source_bytes": model.stat().st_size,
    }


def usable(model: Path, ep: str) -> Path | None:
    """The saved optimised graph for ``model`` if it was made for this machine and ``ep``, else None."""
    graph, data, record = paths(Path(model))
    if not (record.is_file() and graph.is_file() and data.is_file()):
        return None
    try:
        saved = json.loads(record.read_text())
    except ValueError:
        return None
    return graph if saved == key(Path(model), ep) else None


def save(model: Path, ep: str, options, providers: list[str]) -> dict:
    """Write the optimised graph of ``model`` (session ``options`` at the level it will run with) beside it;
    returns the key. Weights go to an external file (graphs over 2 GB cannot hold them inline)."""
    import onnxruntime as ort

    model = Path(model)
    graph, data, record = paths(model)
    tmp = temp_dir(model.parent, "optimized")
    try:
        options.optimized_model_filepath = str(tmp / graph.name)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data.name)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(model), options, providers=providers)
        record.unlink(missing_ok=True)
        os.replace(tmp / data.name, data)
        os.replace(tmp / graph.name, graph)
        saved = key(model, ep)
        record.write_text(json.dumps(saved, indent=2))
        return saved
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove(model: Path) -> None:
    for path in paths(Path(model)):
        path.unlink(missing_ok=True)
