"""Library messages in the CLI's words. The library names the parameter a caller sets (``quantize='auto'``,
``force=True``, ``batch_size=``, ``columns={'label_column': 'NAME'}``); the CLI shows the flag that sets it
(``--quantize auto``, ``--force``, ``--batch-size``, ``--column label_column=NAME``)."""

from __future__ import annotations

import re

# parameter -> the flag of the command that takes it (every command spells a shared parameter the same way)
FLAGS = {
    "after": "--after",
    "baseline": "--baseline",
    "before": "--before",
    "camera": "--camera",
    "folder": "--folder",
    "near": "--near",
    "min_score": "--min-score",
    "sort": "--sort",
    "batch_size": "--batch-size",
    "calibration_data": "--calibration-data",
    "class_names": "--class-names",
    "force": "--force",
    "image_size": "--image-size",
    "keep_case": "--keep-case",
    "max_patches": "--max-patches",
    "model_id": "--model-id",
    "opset": "--opset",
    "preset": "--preset",
    "quantize": "--quantize",
    "samples": "--samples",
    "split": "--split",
    "static": "--static",
    "task": "--task",
    "text_attention_mask": "--text-attention-mask",
}
_COLUMNS = re.compile(r"\bcolumns=\{'(\w+)': '([^']*)'\}")
_PARAMETER = re.compile(r"\b(" + "|".join(FLAGS) + r")=(?:True\b|'([^']*)'|(-?\d+))?")


def as_flags(message: str) -> str:
    """``message`` with each parameter it names (``name=``, ``name=True``, ``name='value'``, ``name=3``) shown as
    the CLI flag (``--name``, ``--name value``); any other text is left as it is."""
    return _PARAMETER.sub(_flag, _COLUMNS.sub(r"--column \1=\2", message))


def _flag(match: re.Match) -> str:
    flag, value = FLAGS[match[1]], match[2] if match[2] is not None else match[3]
    return flag if value is None else f"{flag} {value}"
