"""File-system helpers: every artefact is written to a temporary path and renamed into place at the end.

A temporary path carries its owner in its name (``.NAME.tmp-PID.START-random``, START being the process's start
time, so a reused pid is not taken for the owner), and so does the ``.NAME.old-PID.START`` a replaced folder is
parked under. A process killed with SIGKILL cannot clean up; the next writer of the same NAME (or ``sweep``)
removes the leftovers of owners that are gone, and never those of a live run.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from clipforge._faults import kill_point
from clipforge.errors import InputError, OutputExistsError


def cache_root() -> Path:
    """Where clipforge caches exports and compiled models: ``$CLIPFORGE_CACHE``, else ``~/.cache/clipforge``."""
    return Path(os.environ.get("CLIPFORGE_CACHE", Path.home() / ".cache" / "clipforge"))


def check_output(out: Path, force: bool) -> None:
    """Fail early when ``out`` exists (without ``force``) or its parent cannot be written."""
    if out.exists() and not force:
        raise OutputExistsError(f"output {out} already exists; pass --force to overwrite it")
    parent = out.parent if out.parent != Path("") else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {parent} ({exc.strerror}); choose a writable path") from exc
    if not os.access(parent, os.W_OK):
        raise InputError(f"output folder {parent} is not writable; choose a writable path")


_OWNED = re.compile(r"\.(?:tmp|old)-(?P<pid>\d+)\.(?P<start>\d+)(?:-|$)")


def owner_tag(pid: int | None = None) -> str:
    """``PID.START`` of a process (START: its start time in clock ticks, 0 where /proc is missing)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_start_time(pid) or 0}"


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])  # field 22, counted after "pid (comm)"
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` started at ``start`` still runs (a reused pid with another start is not it)."""
    if os.path.isdir("/proc/self"):
        current = _start_time(pid)
        return current is not None and (start == 0 or current == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(parent: Path, name: str) -> list[Path]:
    """Remove ``.NAME.tmp-*`` / ``.NAME.old-*`` entries in ``parent`` whose owner process is gone; returns them.
    Entries without an owner in their name (older clipforge) are left alone."""
    removed = []
    entries = (
        [e for kind in ("tmp", "old") for e in parent.glob(f".{glob.escape(name)}.{kind}-*")] if parent.is_dir() else []
    )
    for entry in entries:
        owner = _OWNED.match(entry.name[len(name) + 1 :])
        if owner is None or owner_alive(int(owner["pid"]), int(owner["start"])):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink(
            missing_ok=True
        )
        removed.append(entry)
    return removed


def temp_dir(parent: Path, name: str) -> Path:
    """A new hidden folder ``.NAME.tmp-<owner>-...`` in ``parent``, after sweeping dead owners' ones."""
    sweep(parent, name)
    return Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{owner_tag()}-", dir=parent))


@contextlib.contextmanager
def atomic_dir(out: str | Path, force: bool = False):
    """Yield a temporary sibling folder; on success it replaces ``out``, on error it is removed."""
    out = Path(out)
    check_output(out, force)
    tmp = temp_dir(out.parent, out.name)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def replace_dir(src: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{owner_tag()}")
        out.rename(old)
    kill_point("replace")
    src.rename(out)
    kill_point("replaced")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path next to ``path``; it is renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{owner_tag()}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path, skip: tuple[str, ...] = ("manifest.json",)) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative POSIX paths), except ``skip``."""
    return {
        p.relative_to(folder).as_posix(): sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }
