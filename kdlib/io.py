"""Atomic file writes: a temporary file in the target folder, then an ``os.replace``
(:func:`atomic_write`; :func:`atomic_dir` does the same for a folder of files).

Every cache, data file and result kdlib writes goes through :func:`atomic_write`, so an
interrupted run leaves either the old file or the new one, never half of one, and nothing
already written is lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "atomic_dir"]


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
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
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
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
