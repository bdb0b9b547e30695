"""A setting changed for the length of a ``with`` block and put back afterwards, even on error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any


@contextlib.contextmanager
def temporarily(get: Callable[[], Any], set_: Callable[[Any], Any], value: Any):
    """``set_(value)`` inside the block; ``set_(get())``'s earlier result restored at the end."""
    before = get()
    set_(value)
    try:
        yield
    finally:
        set_(before)
