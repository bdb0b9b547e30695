"""Output of the commands, in one place so every command looks alike: tables for people that survive an
80-column terminal and a pipe, JSON for machines (on stdout or into a file), and one line where a table would
be empty.

Tables never cut a cell with an ellipsis: text columns (ids, paths, variant and encoder names, labels) wrap at
spaces and fold long words onto the next line at the same column; numeric columns are right-aligned. Borders are
minimal (a rule under the header, two spaces between columns) so narrow terminals keep their width for the
data. Tables print at the width rich finds: ``COLUMNS`` when set, else the terminal's (also when stdout goes to
a pipe or a file, as long as stdin or stderr is a terminal), else 80 columns.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

from clipforge._io import atomic_file

STDOUT = "-"  # ``--json -``: print the JSON on stdout instead of writing a file


def console(stderr: bool = False):
    """A rich console on stdout (or stderr). Made per call, so ``COLUMNS`` and redirections in effect now apply."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def table(title: str | None, columns: Sequence[str], numeric: Collection[str] = ()):
    """A rich ``Table`` with the shared settings; ``numeric`` names the right-aligned columns."""
    from rich import box
    from rich.table import Table

    out = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for name in columns:
        out.add_column(name, justify="right" if name in numeric else "left", no_wrap=False, overflow="fold")
    return out


def show(rich_table, stderr: bool = False) -> None:
    """Print a table; off a terminal (a pipe, a file) without the padding rich leaves at the end of lines."""
    out = console(stderr)
    if out.is_terminal:
        out.print(rich_table)
        return
    with out.capture() as captured:
        out.print(rich_table)
    out.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    out.file.flush()


def say(message: str, stderr: bool = True, style: str | None = None) -> None:
    """One line, taken literally (no markup) and never broken inside a path: where a table would be empty, a
    summary, a warning (``style="yellow"``) or a failure (``style="red"``; colours show on terminals only)."""
    console(stderr).print(message, markup=False, soft_wrap=True, style=style)


def clean(value):
    """NaN -> None (strict JSON), recursively; tuples -> lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def dumps(value) -> str:
    return json.dumps(clean(value), indent=2, default=str)


def print_json(value) -> None:
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def is_stdout(target: Path | str | None) -> bool:
    return target is not None and str(target) == STDOUT


def write_json(target: Path | str | None, value) -> None:
    """``--json PATH``: write atomically; ``--json -``: print on stdout; None: nothing."""
    if target is None:
        return
    if is_stdout(target):
        print_json(value)
        return

    with atomic_file(Path(target)) as tmp:
        tmp.write_text(dumps(value))
