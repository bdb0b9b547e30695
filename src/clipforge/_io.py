"""File-system helpers: every artefact is written to a temporary path and renamed into place at the end."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

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


@contextlib.contextmanager
def atomic_dir(out: str | Path, force: bool = False):
    """Yield a temporary sibling folder; on success it replaces ``out``, on error it is removed."""
    out = Path(out)
    check_output(out, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def replace_dir(src: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    src.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path next to ``path``; it is renamed onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
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
