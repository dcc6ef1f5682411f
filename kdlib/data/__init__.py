"""Data path: DEAP-format files -> Recording -> windows -> folds (with a disk cache).

Introduced in ``notebooks/01_data_preparation.ipynb``. Rooms:

* :mod:`kdlib.data.deap`      -- DEAP's preprocessed ``sNN.dat`` / ``sNN.mat`` files, safely loaded
* :mod:`kdlib.data.safepickle` -- the restricted, resource-bounded unpickler behind ``sNN.dat``
* :mod:`kdlib.data.deap_bdf`  -- DEAP's original ``sNN.bdf`` recordings (512 Hz, Status triggers)
* :mod:`kdlib.data.custom`    -- bring your own data: any MNE-readable recording + a manifest
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

__all__ = ["Recording", "WindowSet", "PrepConfig", "DATASETS", "dataset_dir", "manifest_path", "load_windows"]

DATASETS = ("synthetic", "deap", "custom")


def manifest_path(manifest: str | os.PathLike | None) -> Path:
    """A custom data set's manifest file, made absolute against the project root.

    Raises
    ------
    FileNotFoundError
        No manifest given, or the file does not exist.
    """
    hint = "describe your recordings in a manifest (see kdlib.data.custom) and pass manifest=FILE"
    if manifest is None or str(manifest) == "":
        raise FileNotFoundError(f"dataset 'custom' needs a manifest: {hint}")
    path = paths.resolve(manifest, Path())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; {hint}")
    return path


def dataset_dir(dataset: str = "synthetic", data_dir: str | os.PathLike | None = None, *,
                manifest: str | os.PathLike | None = None) -> Path:
    """The folder of ``dataset``'s subject files.

    Parameters
    ----------
    dataset : {'synthetic', 'deap', 'custom'}
        ``synthetic``: the kit's generated set (default ``data/synthetic``).
        ``deap``: a real DEAP copy: ``data_dir``, else ``$KDLIB_DEAP_DIR``.
        ``custom``: your own recordings: the folder of ``manifest``.
    data_dir : path-like, optional
        Overrides the default folder (relative paths are taken from the project root).
        Not used by ``custom``.
    manifest : path-like, optional
        The manifest (YAML or TOML) of a ``custom`` data set; required for it.

    Raises
    ------
    FileNotFoundError
        With a one-line hint on how to make or point at the data.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")
    if dataset == "custom":
        return manifest_path(manifest).parent
    if dataset == "synthetic":
        folder = paths.resolve(data_dir, paths.synthetic_dir())
        hint = "write it with `python -m kdlib synth` (the generator kdlib.data.synthetic) or `make run`"
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
                 config: PrepConfig = DEFAULT, use_cache: bool = True, progress: bool = True, *,
                 manifest: str | os.PathLike | None = None) -> WindowSet:
    """Prepared windows of a data set, through the disk cache.

    Parameters
    ----------
    dataset : {'synthetic', 'deap', 'custom'}
        Which data (:data:`DATASETS`).
    data_dir : path-like, optional
        Folder of the ``sNN.dat``/``sNN.mat`` files (default: the dataset's, :func:`dataset_dir`);
        not used with ``dataset="custom"``.
    subjects : iterable, optional
        Default: every subject.
    config : PrepConfig
        Windows, baseline correction, EOG band-pass and label rule.
    use_cache : bool
        Read and write the disk cache (:func:`kdlib.paths.cache_dir`).
    progress : bool
        Show a progress bar over subjects.
    manifest : path-like, optional
        The manifest of a custom data set, required with ``dataset="custom"``
        (:func:`kdlib.data.custom.prepare_custom`).

    Returns
    -------
    WindowSet
        As :func:`kdlib.data.cache.prepare_dataset` (or ``prepare_custom``) returns it.
    """
    from .cache import prepare_dataset

    if dataset == "custom":
        from .custom import prepare_custom

        return prepare_custom(manifest_path(manifest), config, subjects=subjects, use_cache=use_cache,
                              progress=progress)
    return prepare_dataset(dataset_dir(dataset, data_dir), config, subjects=subjects,
                           use_cache=use_cache, progress=progress)
