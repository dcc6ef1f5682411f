"""Atomic file writes: a temporary file in the target folder, then an ``os.replace``
(:func:`atomic_write`; :func:`atomic_dir` does the same for a folder of files).

Every cache, data file and result kdlib writes goes through :func:`atomic_write`, so an
interrupted run leaves either the old file or the new one, never half of one, and nothing
already written is lost.

A temporary's name says who writes it: ``.<name>.<host>-<pid>-<random>.tmp``. A process killed
outright (``kill -9``, a power cut) leaves its temporary behind; :func:`remove_stale_temporaries`,
called when a run or a cache fill starts, deletes those whose writer is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write", "atomic_path", "atomic_dir", "remove_stale_temporaries"]

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TEMPORARY = re.compile(r"^\..+\.tmp$")
_WRITER = re.compile(r"\.([A-Za-z0-9]+)-(\d+)-[A-Za-z0-9_]+\.tmp$")  # host, pid
STALE_AFTER_S = 24 * 3600.0  #: a temporary of another host (or of an older kdlib) is stale after a day


def _prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-{os.getpid()}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside ``path`` for writing; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final file. Its folder is created if needed.
    mode : {'wb', 'w'}
        Binary or text.

    Notes
    -----
    Atomic against an interrupted or failing process (the common case: Ctrl-C, a crash, a
    full disk). No ``fsync``: a power cut may still lose the newest file, never an older one.

    Yields
    ------
    file object
        Write to it; on an exception the temporary file is removed and ``path`` is untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """A temporary file's path beside ``path``, for writers that take a file name; renamed onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final file. Its folder is created if needed.

    Yields
    ------
    Path
        Write the file there (e.g. ``torch.save``, MNE's export); on an exception it is removed and
        ``path`` is untouched. Its name is the one :func:`remove_stale_temporaries` recognises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Fill a temporary folder beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final folder. Its parent is created if needed.

    Notes
    -----
    The folder appears whole or not at all. If ``path`` already exists when the rename comes
    (another process finished the same folder first), the existing one is kept and the new one
    discarded: use this for derived data whose name says what it holds (a cache entry).

    Yields
    ------
    pathlib.Path
        The temporary folder; on an exception it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone after the rename


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_stale(entry: os.DirEntry, now: float, max_age_s: float) -> bool:
    writer = _WRITER.search(entry.name)
    if writer and writer.group(1) == _HOST:
        return int(writer.group(2)) != os.getpid() and not _alive(int(writer.group(2)))
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > max_age_s
    except OSError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporaries (``.*.tmp`` files and folders) left in ``folder`` by dead writers.

    Parameters
    ----------
    folder : path-like
        Looked into, not below; a missing folder is fine.
    max_age_s : float
        A temporary written on this host is stale once its process has ended; one from another
        host (a shared file system) or without a writer in its name once it is this old.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    removed, now = [], time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not _TEMPORARY.match(entry.name) or not _is_stale(entry, now, max_age_s):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed.append(Path(entry.path))
    return removed
