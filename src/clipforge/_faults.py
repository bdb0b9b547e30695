"""Fault injection for tests: SIGKILL the process at a named point, so crash-safety is tested with real kills.

One environment variable, ``CLIPFORGE_DEBUG_KILL``, names where to die:

- ``STAGE``: the first time the process reaches ``kill_point(STAGE)``;
- ``STAGE:N``: the N-th time it reaches it (counted per process);
- ``STAGE:N:MARKER``: the N-th time, only if the file ``MARKER`` can be created first (so of many processes,
  or of a process and the ones that replace it, exactly one dies).

The stages:

- ``export``, ``calibrate``, ``optimize``, ``quantize``, ``compile``: when that build stage starts;
- ``replace`` / ``replaced``: an output folder moved aside / its replacement renamed into place (``_io``);
- ``batch``: a batch of images is done (the local indexer after it commits; a Ray worker after it stored or
  embedded the batch, before returning it).
- ``ann``: the SQLite search sidecar's new graph is written to its temporary file, not yet published
  (``index/ann.py``).
- ``switch``: a model switch's flip, inside its transaction before the commit (``index/sqlite.py``,
  ``index/postgres.py``).

Processes that do not inherit the environment (Ray workers on a running cluster) are handed ``current()`` and
pass it as ``spec``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "CLIPFORGE_DEBUG_KILL"

_reached: Counter[str] = Counter()
_lock = threading.Lock()


def current() -> str | None:
    """This process's kill spec (``$CLIPFORGE_DEBUG_KILL``), to hand to processes that do not inherit it."""
    return os.environ.get(ENV) or None


def kill_point(stage: str, spec: str | None = None) -> None:
    """SIGKILL this process here when ``spec`` (default: ``$CLIPFORGE_DEBUG_KILL``) names ``stage`` and this is
    the time it names; otherwise return at once."""
    spec = current() if spec is None else spec
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != stage:
        return
    count, _, marker = rest.partition(":")
    with _lock:
        _reached[stage] += 1
        if _reached[stage] != int(count or 1):
            return
    if marker and not _claim(marker):
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _claim(marker: str) -> bool:
    """Create ``marker``; False when it already exists (another process died at this point already)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
