"""Bridges to MNE: any recording MNE reads -> :class:`Recording`, and EOG blink detection.

Introduced in ``notebooks/01_data_preparation.ipynb`` (blinks) and used by the bring-your-own-
data path. MNE does the file formats, filtering and EOG event detection; kdlib only cuts trials.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import paths
from .recording import RATING_NAMES, Recording

__all__ = ["recording_from_raw", "find_blinks", "read_eeglab_tutorial"]

_UV = 1e6  # volts -> microvolts
_MIN_BLINK_S = 10.0  # find_eog_events' default 10 s filter must fit the signal


def recording_from_raw(raw, subject: str, onsets_s, duration_s: float, ratings,
                       trial_ids=None, baseline_s: float = 0.0, eeg_picks=None, eog_picks=None,
                       rating_names: tuple[str, ...] = RATING_NAMES) -> Recording:
    """Cut trials out of a continuous MNE Raw into a :class:`Recording`.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Loaded recording; EEG and EOG channels are found by their MNE channel type unless
        ``eeg_picks``/``eog_picks`` name them.
    subject : str
    onsets_s : array-like, shape (n_trials,)
        Trial onsets in seconds from the start of ``raw`` (the baseline, if any, precedes them).
    duration_s : float
        Trial length after the onset, s.
    ratings : array-like, shape (n_trials, len(rating_names))
    trial_ids : array-like, optional
        Default ``1..n_trials``.
    baseline_s : float
        Seconds before each onset kept as the pre-trial baseline.
    eeg_picks, eog_picks : list of str, optional
        The EEG and the EOG channels by name, in this order (default: every channel of MNE type
        ``eeg``, resp. ``eog``, in the recording's order).
    rating_names : tuple of str
        What the columns of ``ratings`` are (default :data:`~kdlib.data.recording.RATING_NAMES`).

    Returns
    -------
    Recording
        Trials (baseline first) in microvolts at the recording's rate.

    Raises
    ------
    ValueError
        No EEG or no EOG channel, unknown channel names, or a trial outside the recording.
    """
    import mne

    where = str(raw.filenames[0]) if getattr(raw, "filenames", None) and raw.filenames[0] else subject
    eeg_names = _pick_names(raw, eeg_picks, "eeg", where)
    eog_names = _pick_names(raw, eog_picks, "eog", where)
    fs = float(raw.info["sfreq"])
    onsets = np.asarray(onsets_s, dtype=float)
    start = np.round((onsets - baseline_s) * fs).astype(int)
    n = int(round((baseline_s + duration_s) * fs))
    bad = np.flatnonzero((start < 0) | (start + n > raw.n_times))
    if len(bad):
        raise ValueError(f"{where}: trial(s) {bad.tolist()} extend beyond the recording "
                         f"({raw.n_times / fs:.1f} s)")
    picks = mne.pick_channels(raw.ch_names, eeg_names + eog_names, ordered=True)
    data = raw.get_data(picks=picks) * _UV  # (n_channels, n_times), microvolts
    trials = np.stack([data[:, s:s + n] for s in start]).astype(np.float32)  # (n_trials, C, n)
    ratings = np.asarray(ratings, dtype=np.float32)
    return Recording(subject=subject, eeg=trials[:, :len(eeg_names)], eog=trials[:, len(eeg_names):],
                     ratings=ratings, eeg_channels=tuple(eeg_names), eog_channels=tuple(eog_names), fs=fs,
                     trial_ids=np.arange(1, len(start) + 1) if trial_ids is None else np.asarray(trial_ids),
                     baseline_s=baseline_s, source=where, rating_names=tuple(rating_names))


def _pick_names(raw, names, ch_type: str, where: str) -> list[str]:
    if names is None:
        types = raw.get_channel_types()
        found = [ch for ch, t in zip(raw.ch_names, types) if t == ch_type]
        if not found:
            raise ValueError(f"{where}: no {ch_type.upper()} channel (set channel types, or pass the names)")
        return found
    unknown = [ch for ch in names if ch not in raw.ch_names]
    if unknown:
        raise ValueError(f"{where}: unknown channel(s) {unknown}; the recording has {raw.ch_names}")
    return list(names)


def find_blinks(rec: Recording, trial: int = 0, channel: str | None = None) -> np.ndarray:
    """Blink peak times (s, from the trial start) in one trial, by :func:`mne.preprocessing.find_eog_events`.

    Parameters
    ----------
    rec : Recording
    trial : int
        Trial index.
    channel : str, optional
        The EOG channel to search (default: ``vEOG`` if present, else the first EOG channel).
    """
    import mne

    if channel is None:
        channel = "vEOG" if "vEOG" in rec.eog_channels else rec.eog_channels[0]
    if channel not in rec.eog_channels:
        raise ValueError(f"{rec.source or rec.subject}: unknown EOG channel {channel!r}; have {rec.eog_channels}")
    if rec.n_samples / rec.fs < _MIN_BLINK_S:
        raise ValueError(f"{rec.source or rec.subject}: trials of {rec.n_samples / rec.fs:.1f} s are too short for "
                         f"blink detection (MNE's 1-10 Hz filter needs at least {_MIN_BLINK_S:g} s); "
                         "load the whole recording as one trial instead")
    raw = rec.to_raw(trial)
    events = mne.preprocessing.find_eog_events(raw, ch_name=channel, verbose="error")
    return (events[:, 0] - raw.first_samp) / rec.fs


def read_eeglab_tutorial(folder: str | os.PathLike | None = None):
    """The EEGLAB tutorial recording (real EEG + EOG, 128 Hz) as an MNE Raw with channel
    names from ``test_chans.locs`` and EOG1/EOG2 typed as EOG.

    It is a visual attention task, not emotion data: kdlib uses it to test the MNE path on a
    real recording. Found in ``../shared/data/eeglab_tutorial`` when that folder exists.

    Raises
    ------
    FileNotFoundError
        When the folder or its files are missing.
    """
    import mne

    folder = Path(folder) if folder is not None else paths.eeglab_tutorial_dir()
    set_file, locs = folder / "test_raw.set", folder / "test_chans.locs"
    for f in (set_file, folder / "test_raw.fdt", locs):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: EEGLAB tutorial file not found")
    raw = mne.io.read_raw_eeglab(set_file, preload=True, verbose="error")
    names = [line.split()[-1] for line in locs.read_text().splitlines() if line.strip()]
    if len(names) != len(raw.ch_names):
        raise ValueError(f"{locs}: {len(names)} channel names for {len(raw.ch_names)} channels")
    raw.rename_channels(dict(zip(raw.ch_names, names)))
    raw.set_channel_types({ch: "eog" for ch in names if ch.upper().startswith("EOG")})
    return raw
