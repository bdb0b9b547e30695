"""One exception tree for clipforge. Every error message says what came in, what was expected and what to do."""

from __future__ import annotations


class ClipforgeError(Exception):
    """Base class: the CLI prints these as one line and exits with code 2."""

    exit_code = 2


class InputError(ClipforgeError, ValueError):
    """A user-supplied value (path, label, option, config) is wrong."""


class ModelNotFoundError(InputError, FileNotFoundError):
    """A model folder, file or hub id cannot be found or downloaded."""


class UnsupportedModelError(InputError):
    """The checkpoint's model type has no registered family."""


class OutputExistsError(InputError, FileExistsError):
    """The output path exists and ``force`` was not given (``--force`` on the CLI)."""


class ExportError(ClipforgeError, RuntimeError):
    """Exporting a model to ONNX failed."""


class ValidationError(ClipforgeError, RuntimeError):
    """A produced graph does not reproduce its reference; ``failures`` lists every mismatch."""

    def __init__(self, what: str, failures: list[str]):
        self.failures = list(failures)
        super().__init__(f"{what} failed validation ({len(failures)} problem(s)): " + "; ".join(failures))


class BuildError(ClipforgeError, RuntimeError):
    """A build stage failed or produced a graph that does not keep accuracy."""


class MissingDependencyError(ClipforgeError, ImportError):
    """An optional dependency (extra) is not installed."""


class TextMaskWarning(UserWarning):
    """A SigLIP export without a text mask was given an ``attention_mask`` with padding (transformers 5's
    tokenizer returns one): it follows the trained model, not transformers 5's masked ``SiglipModel``."""


def require(module: str, extra: str):
    """Import ``module`` or raise a one-line error naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'clipforge[{extra}]'"
        ) from exc
