"""Database locations: which back-end one names (``is_postgres`` / ``sqlite_file``, the one place that decides),
and hiding the passwords in them and in messages that may quote them (CLI errors, logs, /readyz).

``redact`` handles every form a PostgreSQL location takes: the URL's userinfo (``scheme://user:PASSWORD@host``,
also when the password holds an unencoded ``@``), ``password=`` / ``passfile=`` / ``sslpassword=`` query
parameters in any case, and the same keys in libpq ``key=value`` strings (quoted or not). ``secrets_of`` lists
the passwords a location carries, so a driver's message that quotes only a piece of one (libpq splits
``user:pw@rest@host`` at the first ``@`` and reports the host ``rest@host``) can be scrubbed too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

MASK = "***"
# scheme://user:password@  - the userinfo runs to the LAST '@' before whitespace or a quote
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s'\"]*):(?P<pw>[^\s'\"]*)@")
# password=..., PassFile=..., sslpassword=... in a query string or a key=value conninfo
_KEYS = re.compile(r"(?i)(?P<key>\b\w*pass(?:word|file)\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^&\s'\"#]+)")
# a libpq key=value connection string: "host=db.example port=5432 dbname=photos user=me"
_CONNINFO = re.compile(r"^\s*(host|hostaddr|dbname|user|port|service|password)\s*=")


def is_postgres(db: object) -> bool:
    """``postgresql://`` / ``postgres://`` URLs and libpq ``key=value`` strings name a PostgreSQL database."""
    return isinstance(db, str) and (db.startswith(("postgresql://", "postgres://")) or bool(_CONNINFO.match(db)))


def sqlite_file(db: object) -> Path | None:
    """The SQLite file a location names (``~`` expanded), or None for a PostgreSQL location or any other URL
    (``scheme://...``, which no back-end opens)."""
    if is_postgres(db) or "://" in str(db):
        return None
    return Path(db).expanduser()


def redact(text: object, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with every password replaced by ``***``; ``secrets`` (from ``secrets_of``) are also masked
    wherever they or their ``@``-separated tails appear."""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    out = _KEYS.sub(lambda m: f"{m['key']}{MASK}", out)
    for piece in sorted(_pieces(secrets), key=len, reverse=True):
        out = out.replace(piece, MASK)
    return out


def secrets_of(location: str) -> list[str]:
    """The passwords in a database location (raw and percent-decoded), for ``redact(message, secrets)``."""
    found = [m["pw"] for m in _USERINFO.finditer(location)]
    found += [m["value"].strip("'") for m in _KEYS.finditer(location)]
    return [s for s in {*found, *(unquote(s) for s in found)} if s]


def _pieces(secrets) -> set[str]:
    """Each secret, and each tail of it after an ``@`` (what a parser that split at the first ``@`` shows)."""
    pieces = set()
    for secret in secrets:
        parts = secret.split("@")
        pieces.add(secret)
        pieces.update("@".join(parts[i:]) for i in range(1, len(parts)))
        pieces.update(p for p in parts if len(p) >= 2)
    return {p for p in pieces if p and p != MASK}
