"""Data path: DEAP-format files -> Recording -> windows -> folds (with a disk cache).

Introduced in ``notebooks/01_data_preparation.ipynb``. Rooms:

* :mod:`kdlib.data.deap`      -- DEAP's preprocessed ``sNN.dat`` / ``sNN.mat`` files, safely loaded
* :mod:`kdlib.data.synthetic` -- the embedded default: a synthetic set written in DEAP's format
* :mod:`kdlib.data.recording` -- :class:`Recording`, one subject's trials, and its MNE views
* :mod:`kdlib.data.mne_io`    -- any MNE-readable recording -> Recording; EOG blinks
* :mod:`kdlib.data.windows`   -- EOG band-pass, baseline correction, windows, labels, scaling
* :mod:`kdlib.data.splits`    -- leakage-safe folds (by trial or by subject)
* :mod:`kdlib.data.cache`     -- disk cache of prepared windows
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from .recording import Recording
from .windows import DEFAULT, PrepConfig, WindowSet

__all__ = ["Recording", "WindowSet", "PrepConfig", "DATASETS", "dataset_dir", "load_windows"]

DATASETS = ("synthetic", "deap")


def dataset_dir(dataset: str = "synthetic", data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of DEAP-format subject files for ``dataset``.

    Parameters
    ----------
    dataset : {'synthetic', 'deap'}
        ``synthetic``: the kit's generated set (default ``data/synthetic``).
        ``deap``: a real DEAP copy: ``data_dir``, else ``$KDLIB_DEAP_DIR``.
    data_dir : path-like, optional
        Overrides the default folder (relative paths are taken from the project root).

    Raises
    ------
    FileNotFoundError
        With a one-line hint on how to make or point at the data.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")
    if dataset == "synthetic":
        folder = paths.resolve(data_dir, paths.synthetic_dir())
        hint = "write it with `python -m kdlib.data.synthetic` (or `make run`)"
    else:
        env = paths.deap_dir()
        folder = paths.resolve(data_dir, env) if (data_dir or env) else None
        hint = ("DEAP is licensed per user and never downloaded by the kit: request it from its authors, "
                "then set KDLIB_DEAP_DIR or DATA_DIR to the folder of sNN.dat files")
        if folder is None:
            raise FileNotFoundError(f"no DEAP folder given: {hint}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found; {hint}")
    return folder


def load_windows(dataset: str = "synthetic", data_dir: str | os.PathLike | None = None, subjects=None,
                 config: PrepConfig = DEFAULT, use_cache: bool = True, progress: bool = True) -> WindowSet:
    """Prepared windows of a DEAP-format data set, through the disk cache.

    See :func:`kdlib.data.cache.prepare_dataset` for the parameters.
    """
    from .cache import prepare_dataset

    return prepare_dataset(dataset_dir(dataset, data_dir), config, subjects=subjects,
                           use_cache=use_cache, progress=progress)
