"""Windows of a custom data set through the disk cache: :func:`prepare_custom`, :func:`subject_fingerprints`.

Part of :mod:`kdlib.data.custom`. A subject's cache key (:mod:`kdlib.data.cache`) covers its source
files (:func:`source_files`: recordings and their data sidecars) and what else shapes its windows:
the manifest's preprocessing and channel map and the subject's rows of the trials table.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..windows import DEFAULT, PrepConfig, WindowSet
from .loading import load_subject
from .manifest import Manifest, _as_manifest, _is_file, _recording_files, read_trials
from .problems import ManifestError, Problem
from .validation import _require_valid

__all__ = ["source_files", "prepare_custom", "subject_fingerprints"]


def source_files(manifest: Manifest, subject: str) -> list[Path]:
    """Every file one subject's data is read from: its recordings and their data sidecars
    (``.fdt`` of EEGLAB, ``.eeg``/``.vmrk`` of BrainVision, with the same stem).

    Parameters
    ----------
    manifest : Manifest
    subject : str

    Returns
    -------
    list of Path
        What the subject's cache key covers besides its settings and trial rows.
    """
    return [f for rec in manifest.recordings_of(subject) for f in _recording_files(rec)]


def _cache_text(manifest: Manifest, table, subject: str) -> str:
    """What shapes one subject's windows besides its files: settings and its trial rows."""
    rows = table[table["subject"] == subject].drop(columns="line")
    recordings = [(r.recording, r.path.name) for r in manifest.recordings_of(subject)]
    return f"custom|{manifest.describe()}|{recordings}|{rows.to_csv(index=False)}"


def prepare_custom(manifest: Manifest | str | os.PathLike, config: PrepConfig = DEFAULT, subjects=None,
                   cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                   progress: bool = True) -> WindowSet:
    """Windows of every (or the chosen) subject of a custom data set, through the disk cache.

    Parameters
    ----------
    manifest : Manifest or path-like
    config : PrepConfig
        Windows, baseline correction, EOG band-pass and label rule, as for DEAP.
    subjects : iterable of str, optional
        Default: every subject of the manifest, in manifest order.
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`. The key covers ``config``, the manifest's
        preprocessing and channel map, the subject's trial rows and every source file.
    use_cache : bool
    progress : bool

    Returns
    -------
    WindowSet

    Raises
    ------
    ManifestError
        Every problem of the chosen subjects, before anything is read in full.
    """
    from tqdm.auto import tqdm

    from ..cache import cached_windows, clean_temporaries
    from ..windows import concat_windows

    manifest = _as_manifest(manifest)
    chosen = manifest.subjects if subjects is None else tuple(str(s) for s in subjects)
    if not chosen:
        raise ManifestError(manifest.path, [Problem("manifest", str(manifest.path), "the subject list is empty")])
    _require_valid(manifest, chosen)
    table, _ = read_trials(manifest)
    if use_cache:
        clean_temporaries(cache_dir)
    parts = [cached_windows(s, source_files(manifest, s), config,
                            lambda s=s: load_subject(manifest, s, validate=False), cache_dir, use_cache,
                            extra=_cache_text(manifest, table, s))
             for s in tqdm(chosen, desc="prepare", unit="subject", disable=not progress)]
    return concat_windows(parts)


def subject_fingerprints(manifest: Manifest | str | os.PathLike, subjects=None) -> dict[str, str]:
    """The fingerprint of every (or every chosen) subject of a custom data set.

    Each covers the subject's source files and what else shapes its windows (settings, channel
    map, its trial rows), as its cache key does. What a run folder records of its data
    (:meth:`kdlib.evaluate.DataSpec.fingerprint`).

    Parameters
    ----------
    manifest : Manifest or path-like
    subjects : iterable of str, optional
        Default: every subject of the manifest.

    Returns
    -------
    dict
        ``{subject: fingerprint}`` (:func:`kdlib.data.cache.source_fingerprint`).

    Raises
    ------
    ManifestError
        An unreadable trials table, a missing recording, a subject not in the manifest.
    """
    from ..cache import source_fingerprint

    manifest = _as_manifest(manifest)
    chosen = manifest.subjects if subjects is None else tuple(str(s) for s in subjects)
    table, problems = read_trials(manifest)
    problems += [Problem("missing-file", str(r.path), f"recording {r.recording!r} of subject {r.subject!r} not found")
                 for r in manifest.recordings if r.subject in chosen and not _is_file(r.path)]
    problems += [Problem("manifest", str(manifest.path), f"subject {s!r} is not in the manifest")
                 for s in chosen if s not in manifest.subjects]
    if problems:
        raise ManifestError(manifest.path, problems)
    return {s: source_fingerprint(source_files(manifest, s), _cache_text(manifest, table, s)) for s in chosen}
