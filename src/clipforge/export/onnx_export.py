"""torch -> ONNX for one encoder. TorchScript exporter (see docs/export.md for why not dynamo)."""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import warnings
from pathlib import Path

from clipforge.errors import ExportError
from clipforge.specs import DYNAMIC_AXES, EncoderIO

EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's hard limit is 2 GiB; leave room for the graph itself


@contextlib.contextmanager
def quiet_export():
    """Silence the exporter's deprecation and tracer warnings for the duration of one export only."""
    torch_logger = logging.getLogger("torch.onnx")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            torch_logger.setLevel(level)


def dynamic_axes(io: EncoderIO) -> dict[str, dict[int, str]]:
    return {t.name: {i: a for i, a in enumerate(t.axes) if a in DYNAMIC_AXES} for t in (*io.inputs, *io.outputs)}


def export_encoder(module, example: dict, io: EncoderIO, path: Path, *, opset: int, static: bool) -> Path:
    """Export ``module`` called with ``example`` (name -> tensor, in ``io`` order) to ``path``.

    The graph is first written to a scratch folder (the exporter may scatter external-data files there),
    then re-saved to ``path`` as one file, or with one ``model.onnx.data`` beside it when it is large.
    """
    import onnx
    import torch

    scratch = path.parent / "_scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    raw = scratch / "model.onnx"
    args = tuple(example[name] for name in io.input_names)
    try:
        with quiet_export(), torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(raw),
                input_names=io.input_names,
                output_names=io.output_names,
                dynamic_axes=None if static else dynamic_axes(io),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {path.parent.name}: {type(exc).__name__}: {exc}") from exc
    model = onnx.load(str(raw))
    save_onnx(model, path)
    shutil.rmtree(scratch, ignore_errors=True)
    return path


def tensor_bytes(tensor) -> int:
    """The size of an initializer's values, computed from its shape and type: ``ByteSize()`` serialises, which
    protobuf refuses for one tensor over 2 GiB (XLM-V's 901k-token embedding at width 1024 is 3.7 GB)."""
    import onnx

    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return math.prod(tensor.dims) * itemsize


def save_onnx(model, path: Path) -> None:
    """Save with external data (one ``<name>.data`` file) when the weights approach protobuf's 2 GiB limit."""
    import onnx

    large = sum(tensor_bytes(t) for t in model.graph.initializer) > EXTERNAL_DATA_BYTES
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data" if large else None,
    )
