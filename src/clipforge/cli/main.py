"""Wiring: build the Typer app from the command modules and map clipforge errors to one line + exit code 2.

Warnings are shown the same way, one line each (``warning: ...``), not with Python's file, line and source.
Set ``CLIPFORGE_DEBUG=1`` to see the full traceback (and warnings in Python's own format) instead.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import warnings

import typer

from clipforge._dblocation import redact
from clipforge.cli.wording import as_flags
from clipforge.errors import ClipforgeError

COMMAND_MODULES = [
    "demo",
    "models",
    "export",
    "config",
    "build",
    "classify",
    "embed",
    "eval",
    "perf",
    "report",
    "export-classifier",
    "export-pipeline",
    "index",
    "search",
    "dedup",
    "serve",
]

app = typer.Typer(
    name="clipforge",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Fast, validated ONNX for CLIP-family dual encoders: export, build, classify, embed, perf, eval.",
)


@app.callback()
def _commands() -> None:
    # a group callback keeps clipforge a group of commands also when one command alone is registered
    pass


def _register(argv: list[str]) -> None:
    for name in _wanted(argv):
        importlib.import_module(f"clipforge.cli.{name.replace('-', '_')}").register(app)


def _wanted(argv: list[str]) -> list[str]:
    """The command ``argv`` runs (its first word; the app has no options of its own), so a command imports
    only its own module and what that needs; every command for the overview help and for unknown words."""
    words = [a for a in argv if not a.startswith("-")]
    return [words[0]] if words and words[0] in COMMAND_MODULES else COMMAND_MODULES


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():  # the one-line format lasts as long as the command
        if not os.environ.get("CLIPFORGE_DEBUG"):
            warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    _register(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=argv, standalone_mode=False)
    except ClipforgeError as exc:
        return _fail(exc, exc.exit_code)
    except KeyboardInterrupt:
        return _fail(KeyboardInterrupt("interrupted; no partial output was left behind"), 130)
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # click usage errors and the unexpected
        return _click_or_unexpected(exc)
    return code if isinstance(code, int) else 0


def _click_types(name: str) -> tuple[type, ...]:
    """click's exception class ``name`` from every copy in use: newer typer releases bundle click as
    ``typer._click`` (without ``Abort``, which typer then exports itself)."""
    found = [getattr(typer, name, None)]
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name, None))
        except ImportError:
            continue
    return tuple(t for t in found if isinstance(t, type))


def _click_or_unexpected(exc: Exception) -> int:
    if isinstance(exc, _click_types("ClickException")):
        exc.show()
        return exc.exit_code
    if isinstance(exc, _click_types("Abort")):
        return _fail(KeyboardInterrupt("aborted"), 130)
    return _fail(exc, 1, prefix=f"unexpected {type(exc).__name__}: ")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, worded like the errors."""
    print(f"warning: {_one_line(message, category.__name__)}", file=file or sys.stderr)


def _fail(exc: BaseException, code: int, prefix: str = "") -> int:
    if os.environ.get("CLIPFORGE_DEBUG"):
        raise exc
    hint = " (set CLIPFORGE_DEBUG=1 for the traceback)" if code == 1 else ""
    print(f"error: {prefix}{_one_line(exc, type(exc).__name__)}{hint}", file=sys.stderr)
    return code


def _one_line(message: object, fallback: str) -> str:
    """The first line of ``message`` with secrets redacted and parameters shown as flags (``fallback`` if empty)."""
    text = str(message).strip()
    return as_flags(redact(text.splitlines()[0])) if text else fallback


def run() -> None:
    """The ``clipforge`` command: ``main``, then exit with its code. What the command made is frozen out of the
    garbage collector first: the interpreter's teardown would otherwise run full collections over every object
    numpy, onnxruntime, typer and rich made (about 0.08 s on 2 cores, a tenth of a fresh search at 1M rows) in
    a process that is ending. Objects are still released by reference count, and ``atexit`` still runs."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
