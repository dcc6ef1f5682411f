"""Path helpers: every file access of the notebooks and the CLI goes through here.

The kernel's working directory differs between papermill (``build/notebooks``) and nbval
(wherever pytest runs), so nothing in kdlib relies on the current directory.

Environment variables
---------------------
``KDLIB_ROOT``
    The project root (default: the folder holding ``pyproject.toml`` above this package, else
    the current directory).
``KDLIB_DATA_DIR``
    Where generated data and caches live (default ``<root>/data``).
``KDLIB_DEAP_DIR``
    A real DEAP copy (the folder that holds ``sNN.dat`` or ``sNN.mat`` files).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "project_root",
    "data_dir",
    "synthetic_dir",
    "cache_dir",
    "build_dir",
    "notebooks_dir",
    "built_notebooks_dir",
    "results_dir",
    "shared_dir",
    "eeglab_tutorial_dir",
    "deap_dir",
    "resolve",
]


def project_root() -> Path:
    """The kit's root folder (``$KDLIB_ROOT``, or the source checkout holding kdlib)."""
    env = os.environ.get("KDLIB_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd().resolve()


def resolve(path: str | os.PathLike | None, default: Path) -> Path:
    """``path`` made absolute against the project root, or ``default`` when it is None/empty.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A user-given path; ``~`` is expanded, a relative path is taken from
        :func:`project_root` (not from the working directory, which differs between papermill
        and nbval).
    default : pathlib.Path
        Returned as it is when ``path`` is None or ``""``.

    Returns
    -------
    pathlib.Path
        An absolute path (``default`` excepted, which is not touched).
    """
    if path is None or str(path) == "":
        return default
    p = Path(path).expanduser()
    return p if p.is_absolute() else (project_root() / p).resolve()


def data_dir() -> Path:
    """Folder for generated data and caches (git-ignored)."""
    return resolve(os.environ.get("KDLIB_DATA_DIR"), project_root() / "data")


def synthetic_dir() -> Path:
    """Where ``kdlib.data.synthetic`` writes its DEAP-format files by default."""
    return data_dir() / "synthetic"


def cache_dir() -> Path:
    """Where prepared windows are cached."""
    return data_dir() / "cache"


def build_dir() -> Path:
    """Executed notebooks and other build products."""
    return project_root() / "build"


def notebooks_dir() -> Path:
    """The numbered source notebooks (``<root>/notebooks``, committed without outputs)."""
    return project_root() / "notebooks"


def built_notebooks_dir() -> Path:
    """Where ``kdlib.notebooks.run_notebooks`` writes executed copies (``<root>/build/notebooks``)."""
    return build_dir() / "notebooks"


def results_dir() -> Path:
    """Result tables and figures of reproduction runs."""
    return project_root() / "results"


def shared_dir() -> Path:
    """``../shared`` beside the project (present in CI, absent in a user's clone)."""
    return project_root().parent / "shared"


def eeglab_tutorial_dir() -> Path:
    """The real EEG + EOG test recording (EEGLAB tutorial data), if ``../shared`` is there."""
    return shared_dir() / "data" / "eeglab_tutorial"


def deap_dir() -> Path | None:
    """A real DEAP copy named by ``$KDLIB_DEAP_DIR``, or None."""
    env = os.environ.get("KDLIB_DEAP_DIR")
    return Path(env).expanduser().resolve() if env else None
