"""Atomic file writes: a temporary file in the target folder, then an ``os.replace``.

Every cache, data file and result kdlib writes goes through :func:`atomic_write`, so an
interrupted run leaves either the old file or the new one, never half of one, and nothing
already written is lost.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


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
