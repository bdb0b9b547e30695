"""File paths in an index database: any path the file system holds, stored as text both back-ends accept.

A path that is valid UTF-8 is stored as it is. One that is not (a name written by another system's encoding,
which Python holds with surrogate escapes) cannot be encoded as UTF-8 text, so it is stored as ``fsbytes:``
followed by its bytes percent-encoded; stored paths are otherwise absolute, so the prefix is unambiguous.
``from_db`` gives back the exact path, which opens the real file; ``display`` is a printable form of it.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

PREFIX = "fsbytes:"


def to_db(path: str) -> str:
    """The text stored for ``path`` (a surrogate-escaped ``str`` as ``os.fsdecode`` gives)."""
    return PREFIX + quote_from_bytes(os.fsencode(path), safe="/") if _has_surrogates(path) else path


def from_db(text: str) -> str:
    """The real path of a stored text (inverse of ``to_db``)."""
    return os.fsdecode(unquote_to_bytes(text[len(PREFIX) :])) if text.startswith(PREFIX) else text


def display(path: str) -> str:
    """``path`` printable anywhere (terminal, JSON, logs): undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if _has_surrogates(path) else path


def _has_surrogates(path: str) -> bool:
    try:
        path.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True
