"""One subject of a custom data set as a :class:`~kdlib.data.recording.Recording`: :func:`load_subject`.

Part of :mod:`kdlib.data.custom`.

What :func:`load_subject` does, per recording, on the continuous signal (so that filters see
no trial edges): read with :func:`mne.io.read_raw`, rename, resample to ``fs``
(:meth:`mne.io.Raw.resample`), form the EOG by explicit subtraction of the named electrodes
(before anything touches the EEG, so an electrode may serve both), then re-reference
(:meth:`~mne.io.Raw.set_eeg_reference`) and band-pass (:meth:`~mne.io.Raw.filter`) the EEG,
and cut the trials (:func:`kdlib.data.mne_io.recording_from_raw`). The EOG is **not** filtered
here: like DEAP's EOG it is band-passed later by :func:`kdlib.data.windows.make_windows`
(``PrepConfig.eog_band``), so it is filtered exactly once. Signals are kept in microvolts.
"""

from __future__ import annotations

import os

import numpy as np

from ..recording import RATING_NAMES, Recording
from .manifest import ChannelMap, Manifest, Preprocessing, RecordingFile, _as_manifest, _read_raw, read_trials
from .problems import ManifestError, Problem
from .validation import _require_valid

__all__ = ["load_subject", "bipolar_eog", "process_raw"]


def bipolar_eog(raw, derivations) -> np.ndarray:
    """EOG derivations of a loaded MNE Raw, by explicit subtraction.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Preloaded; holds every electrode the derivations name.
    derivations : sequence of EogDerivation

    Returns
    -------
    ndarray, shape (n_eog, n_times), volts
        ``anode - cathode`` per derivation, or the anode itself for a ready-made channel.
    """
    rows = []
    for d in derivations:
        anode = raw.get_data(picks=[d.anode])[0]  # (n_times,)
        rows.append(anode if d.cathode is None else anode - raw.get_data(picks=[d.cathode])[0])
    return np.stack(rows)  # (n_eog, n_times)


def process_raw(raw, channels: ChannelMap, prep: Preprocessing):
    """Resample, derive the EOG, re-reference and band-pass the EEG of one continuous recording.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Holds the channels named by ``channels`` (already renamed) and any reference electrodes.
        Not modified.
    channels : ChannelMap
    prep : Preprocessing

    Returns
    -------
    mne.io.RawArray
        The EEG channels (``channels.eeg`` order, type ``eeg``) then the EOG derivations (type
        ``eog``, unfiltered), volts, at ``prep.fs``.

    Notes
    -----
    Order: resample everything (:meth:`mne.io.Raw.resample`), form the EOG from the untouched
    electrodes (an electrode may be both EEG and part of an EOG derivation), then
    :meth:`~mne.io.Raw.set_eeg_reference` over the EEG channels and :meth:`~mne.io.Raw.filter`.
    """
    import mne

    needed = list(dict.fromkeys(channels.eeg + channels.eog_electrodes + prep.reference_channels))
    raw = raw.copy().pick(needed).load_data(verbose="error")
    if raw.info["sfreq"] != prep.fs:
        raw.resample(prep.fs, verbose="error")  # the whole recording, before the trials are cut
    eog = bipolar_eog(raw, channels.eog)  # (n_eog, n_times), before the EEG is touched
    eeg_raw = raw.pick(list(dict.fromkeys(channels.eeg + prep.reference_channels)))
    eeg_raw.set_channel_types({name: "eeg" for name in eeg_raw.ch_names}, on_unit_change="ignore",
                              verbose="error")
    if prep.eeg_reference == "average":
        eeg_raw.set_eeg_reference("average", projection=False, verbose="error")
    elif prep.reference_channels:
        eeg_raw.set_eeg_reference(list(prep.reference_channels), verbose="error")
    if prep.eeg_band is not None:
        eeg_raw.filter(*prep.eeg_band, picks="eeg", verbose="error")
    eeg = eeg_raw.get_data(picks=list(channels.eeg))  # (n_eeg, n_times)
    info = mne.create_info(list(channels.eeg) + list(channels.eog_names), prep.fs,
                           ["eeg"] * len(channels.eeg) + ["eog"] * len(channels.eog))
    return mne.io.RawArray(np.concatenate([eeg, eog]), info, verbose="error")  # (n_eeg + n_eog, n_times)


def _cut_trials(raw, rec: RecordingFile, rows, manifest: Manifest) -> Recording:
    """The rows' trials (and baselines) of one processed recording."""
    from ..mne_io import recording_from_raw

    ch, crop = manifest.channels, manifest.preprocessing.trial_duration_s
    duration = float(crop if crop is not None else rows["duration_s"].iloc[0])
    baseline = float(rows["baseline_s"].iloc[0])
    common = dict(subject=rec.subject, ratings=rows[list(RATING_NAMES)].to_numpy(np.float32),
                  trial_ids=rows["trial"].to_numpy(np.int64), eeg_picks=list(ch.eeg),
                  eog_picks=list(ch.eog_names))
    trials = recording_from_raw(raw, onsets_s=rows["onset_s"].to_numpy(), duration_s=duration, **common)
    if baseline <= 0:
        return trials
    base = recording_from_raw(raw, onsets_s=rows["baseline_onset_s"].to_numpy(), duration_s=baseline, **common)
    return _with_baseline(base, trials, baseline)


def _with_baseline(base: Recording, trials: Recording, baseline_s: float) -> Recording:
    """Baseline segments put in front of their trials (time axis), as DEAP's files have them."""
    return Recording(subject=trials.subject, eeg=np.concatenate([base.eeg, trials.eeg], axis=2),
                     eog=np.concatenate([base.eog, trials.eog], axis=2), ratings=trials.ratings,
                     eeg_channels=trials.eeg_channels, eog_channels=trials.eog_channels, fs=trials.fs,
                     trial_ids=trials.trial_ids, baseline_s=baseline_s, source=trials.source,
                     rating_names=trials.rating_names)


def _stack(parts: list[Recording], manifest: Manifest) -> Recording:
    """Recordings of one subject as one, trials sorted by trial id."""
    first = parts[0]
    trial_ids = np.concatenate([p.trial_ids for p in parts])
    order = np.argsort(trial_ids, kind="stable")
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])[order]  # noqa: E731
    return Recording(subject=first.subject, eeg=cat("eeg"), eog=cat("eog"), ratings=cat("ratings"),
                     eeg_channels=first.eeg_channels, eog_channels=first.eog_channels, fs=first.fs,
                     trial_ids=trial_ids[order], baseline_s=first.baseline_s,
                     source=f"{manifest.path} ({first.subject})", rating_names=first.rating_names)


def load_subject(manifest: Manifest | str | os.PathLike, subject: str, *, validate: bool = True) -> Recording:
    """One subject of a custom data set as a :class:`~kdlib.data.recording.Recording`.

    Parameters
    ----------
    manifest : Manifest or path-like
    subject : str
    validate : bool
        Run :func:`validate_manifest` for this subject first (reads the file headers).

    Returns
    -------
    Recording
        EEG (manifest order) and EOG (derivation order) in microvolts at ``preprocessing.fs``,
        trials sorted by trial id, the baseline (if any) in front of each trial, ratings in the
        columns of :data:`~kdlib.data.recording.RATING_NAMES` (NaN where the table has none).
        The EOG is not filtered here (``make_windows`` band-passes it).

    Raises
    ------
    ManifestError
        With every problem of this subject's files and trials.
    """
    manifest = _as_manifest(manifest)
    subject = str(subject)
    if validate:
        _require_valid(manifest, [subject])
    table, problems = read_trials(manifest)
    if problems:
        raise ManifestError(manifest.path, problems)
    rows = table[table["subject"] == subject]
    parts = []
    for rec in manifest.recordings_of(subject):
        mine = rows[rows["recording"] == rec.recording]
        if len(mine):
            raw = process_raw(_read_raw(rec.path, manifest, preload=False), manifest.channels,
                              manifest.preprocessing)
            parts.append(_cut_trials(raw, rec, mine, manifest))
    if not parts:
        raise ManifestError(manifest.path, [Problem("no-trials", str(manifest.trials),
                                                    f"subject {subject!r} has no trial")])
    return _stack(parts, manifest)
