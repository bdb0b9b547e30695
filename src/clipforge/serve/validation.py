"""Checks that run before any parser sees a request, and on the server's own key: a JSON body must be UTF-8,
nested at most ``MAX_JSON_DEPTH`` deep and free of lone UTF-16 surrogate escapes (``"\\ud800"``), which Python's
``json`` accepts but no tokenizer can encode; an API key must be non-empty printable ASCII.

All checks are byte-level replacements, regular expressions and numpy, so a 30 MB body costs at most a few hundred
milliseconds whatever it holds, never a Python loop per character.
"""

from __future__ import annotations

import re

import numpy as np

from clipforge.errors import InputError

MAX_JSON_DEPTH = 32  # a request of this API nests 3 deep; json.loads recurses once per level

_SURROGATE_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_CHUNK = 1 << 20


def json_body_problem(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``raw`` must not reach ``json.loads``, as one line for the client; None when it may."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8 (bad byte at position {exc.start}); send JSON encoded as UTF-8"
    if nesting_exceeds(raw, max_depth):
        return f"the JSON is nested more than {max_depth} levels deep; requests of this API nest 3 levels"
    position = lone_surrogate_escape(raw)
    if position is not None:
        return (
            f"the JSON has a lone UTF-16 surrogate escape ({raw[position : position + 6].decode()}) at position "
            f"{position}; send text as valid Unicode (a high surrogate must be followed by a low one)"
        )
    return None


def nesting_exceeds(raw: bytes, max_depth: int) -> bool:
    """True when the arrays/objects of ``raw`` nest deeper than ``max_depth``. Brackets inside strings do not
    count: with the escaped backslashes and quotes blanked out, a byte is inside a string when an odd number
    of quotes precede it. Numpy over 1 MB chunks, carrying the depth and the quote parity across."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    text = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    depth, quotes = 0, 0
    for start in range(0, len(text), _CHUNK):
        chunk = np.frombuffer(text, np.uint8, count=min(_CHUNK, len(text) - start), offset=start)
        quote = chunk == ord('"')
        outside = (np.cumsum(quote, dtype=np.int64) + quotes) % 2 == 0
        opens = ((chunk == ord("[")) | (chunk == ord("{"))) & outside
        closes = ((chunk == ord("]")) | (chunk == ord("}"))) & outside
        running = np.cumsum(opens.astype(np.int32) - closes, dtype=np.int64) + depth
        if int(running.max()) > max_depth:
            return True
        depth, quotes = int(running[-1]), quotes + int(quote.sum())
    return False


def lone_surrogate_escape(raw: bytes) -> int | None:
    """Position of the first ``\\uD800``-``\\uDFFF`` escape that is not half of a high+low pair, else None.
    Escaped backslashes go first (``\\\\ud800`` is a backslash and the text "ud800"); the same-length
    replacements keep positions."""
    if b"\\u" not in raw:
        return None
    text = raw.replace(b"\\\\", b"__")
    text = _SURROGATE_PAIR.sub(b"_" * 12, text)
    match = _SURROGATE.search(text)
    return match.start() if match else None


def check_api_key(key: str | None) -> None:
    """An API key, when set, is non-empty printable ASCII without spaces: an empty one would switch
    authentication off, and a client sends non-ASCII header bytes in an encoding the server cannot know."""
    if key is None:
        return
    if not key:
        raise InputError(
            "the API key is empty (--api-key or CLIPFORGE_API_KEY); give a key, or unset it to "
            "serve without authentication"
        )
    bad = [i for i, ch in enumerate(key) if not "!" <= ch <= "~"]
    if bad:
        raise InputError(
            f"the API key has {len(bad)} character(s) outside printable ASCII or a space (first at "
            f"position {bad[0]}); use letters, digits and punctuation, e.g. from "
            "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'"
        )
