"""Files a custom data set is made of, written from arrays: EDF/BDF recordings and notebook 06's example set.

Part of :mod:`kdlib.data.custom` (introduced in ``notebooks/06_bring_your_own_data.ipynb``). The
rest of the package *reads* a data set; this module writes one, for teaching and testing::

    write_recording     one continuous recording (EEG + EOG electrodes, microvolts) as EDF or BDF,
                        through MNE's exporter (mne.export.export_raw, which uses edfio)
    quantisation_step   the digital step that exporter gives a physical range (16 or 24 bits)
    monopolar_eog       four eye electrodes whose differences are a given bipolar hEOG and vEOG
    write_example_set   notebook 06's example: synthetic subjects laid end to end as continuous
                        recordings, one file per recording, and their trials table (trials.csv)
    isolated_onsets     stimulus onsets with no other onset inside their baseline or their trial

**The quantisation step.** EDF stores 16-bit integers, BDF 24-bit ones; per channel the header
gives a physical range (here in µV) and a digital range, and a sample is
``physical_min + (digital - digital_min) * step`` with
``step = (physical_max - physical_min) / (digital_max - digital_min)``. MNE's exporter writes the
*symmetric* digital range ``-32767 … 32767`` (EDF) or ``-8388607 … 8388607`` (BDF), so that the
middle of the physical range maps to a digital value exactly: the divisor is 65534 for EDF, not
65535. With ``physical_range="auto"`` (the default used here) the physical range is the data's
range per channel *type*: all EEG channels share one, the EOG electrodes another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...io import atomic_path, atomic_write
from .. import synthetic

__all__ = ["DIGITAL_MAX", "EOG_ELECTRODES", "quantisation_step", "write_recording", "monopolar_eog",
           "ExampleSet", "write_example_set", "isolated_onsets"]

#: The largest digital value MNE's exporter writes (the range is symmetric: -max ... max).
DIGITAL_MAX = {"edf": 2 ** 15 - 1, "bdf": 2 ** 23 - 1}
#: The monopolar eye electrodes of the example set: left/right outer canthus, supra-/infra-orbital.
EOG_ELECTRODES = ("LO", "RO", "SO", "IO")


def _fmt(fmt: str) -> str:
    fmt = str(fmt).lower()
    if fmt not in DIGITAL_MAX:
        raise ValueError(f"fmt must be 'edf' or 'bdf', got {fmt!r}")
    return fmt


def quantisation_step(physical_min: float, physical_max: float, fmt: str = "edf") -> float:
    """The physical value of one digital step of a channel written by :func:`write_recording`.

    Parameters
    ----------
    physical_min, physical_max : float
        The channel's physical range as its header states it (e.g. µV).
    fmt : {'edf', 'bdf'}
        16-bit EDF or 24-bit BDF.

    Returns
    -------
    float
        ``(physical_max - physical_min) / (2 * DIGITAL_MAX[fmt])``: MNE writes the symmetric
        digital range, so the divisor is 65534 (EDF) or 16777214 (BDF).
    """
    if not physical_max > physical_min:
        raise ValueError(f"physical range [{physical_min}, {physical_max}] is empty")
    return (float(physical_max) - float(physical_min)) / (2 * DIGITAL_MAX[_fmt(fmt)])


def write_recording(path: str | os.PathLike, eeg_uv: np.ndarray, eog_uv: np.ndarray, fs: float,
                    eeg_names, eog_names, fmt: str = "edf") -> Path:
    """Write one continuous recording as EDF (16 bit) or BDF (24 bit), atomically.

    Parameters
    ----------
    path : path-like
        The file to write (replaced if it exists; written beside it first, then renamed).
    eeg_uv : ndarray, shape (n_eeg, n_times)
        EEG in microvolts, channels typed ``eeg``.
    eog_uv : ndarray, shape (n_eog, n_times)
        EOG electrodes (or derivations) in microvolts, typed ``eog``.
    fs : float
        Sampling rate, Hz (whole numbers keep the file's sample times exact).
    eeg_names, eog_names : sequence of str
        Channel names (at most 16 characters each: EDF's limit).
    fmt : {'edf', 'bdf'}

    Returns
    -------
    Path
        ``path``.
    """
    import mne

    fmt, path = _fmt(fmt), Path(path)
    eeg_uv, eog_uv = np.atleast_2d(eeg_uv), np.atleast_2d(eog_uv)
    if eeg_uv.shape[1] != eog_uv.shape[1] or len(eeg_names) != len(eeg_uv) or len(eog_names) != len(eog_uv):
        raise ValueError(f"{path.name}: EEG {eeg_uv.shape} / {len(eeg_names)} names and EOG {eog_uv.shape} / "
                         f"{len(eog_names)} names do not match")
    names = [*eeg_names, *eog_names]
    info = mne.create_info(names, float(fs), ["eeg"] * len(eeg_names) + ["eog"] * len(eog_names))
    raw = mne.io.RawArray(np.concatenate([eeg_uv, eog_uv]) * 1e-6, info, verbose="error")  # (n, T) volts
    with atomic_path(path) as tmp:  # fmt is given, so the temporary's ".tmp" suffix does not matter
        mne.export.export_raw(tmp, raw, fmt=fmt, overwrite=True, verbose="error")
    return path


def monopolar_eog(heog: np.ndarray, veog: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Four eye electrodes (µV) whose differences are the given bipolar EOG: LO - RO = hEOG, SO - IO = vEOG.

    Each pair shares a random electrode offset (uniform in ±400 µV) and a slow drift (40 µV, period
    97 s) common to all four: what a real monopolar recording carries and the difference cancels.

    Parameters
    ----------
    heog, veog : ndarray, shape (n_times,)
        The bipolar horizontal and vertical EOG, µV.
    fs : float
        Sampling rate, Hz.
    rng : numpy.random.Generator
        Draws the offsets and the drift's phase.

    Returns
    -------
    ndarray, shape (4, n_times)
        ``LO, RO, SO, IO`` (:data:`EOG_ELECTRODES`).
    """
    t = np.arange(heog.size) / fs
    drift = 40 * np.sin(2 * np.pi * t / 97.0 + rng.uniform(0, 2 * np.pi))  # (T,) common to all four
    common_h, common_v = rng.uniform(-400, 400) + drift, rng.uniform(-400, 400) + drift  # electrode offsets
    return np.stack([common_h + heog / 2, common_h - heog / 2, common_v + veog / 2, common_v - veog / 2])  # (4, T)


@dataclass
class ExampleSet:
    """What :func:`write_example_set` wrote.

    Attributes
    ----------
    recordings : list of dict
        ``subject``, ``id``, ``file`` (relative to the folder) per recording, in writing order.
    trials : pandas.DataFrame
        The trials table, as written to ``trials.csv``.
    originals : dict
        ``(subject, recording id)`` -> ``(eeg (32, T), bipolar eog (2, T), monopolar eog (4, T))``
        in µV, as passed to the writer (before quantisation).
    """

    recordings: list
    trials: pd.DataFrame
    originals: dict = field(repr=False)


def _trial_rows(subject: str, rec_id: str, trials: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Rows of the trials table for trials laid end to end (trial k starts at k * 63 s)."""
    trial_s, base_s = synthetic.N_SAMPLES / synthetic.FS, synthetic.BASELINE_S
    rows = []
    for k, trial in enumerate(trials):
        v, a, d, l = labels[trial]
        rows.append(dict(subject=subject, recording=rec_id, trial=int(trial) + 1, onset_s=k * trial_s + base_s,
                         duration_s=trial_s - base_s, baseline_s=base_s, valence=round(v, 2),
                         arousal=round(a, 2), dominance=round(d, 2), liking=round(l, 2)))
    return rows


def write_example_set(folder: str | os.PathLike, n_subjects: int, n_trials: int, seed: int,
                      fmt: str = "edf") -> ExampleSet:
    """Notebook 06's example: synthetic subjects as continuous recordings with monopolar eye electrodes.

    Subject ``i`` is :func:`kdlib.data.synthetic.generate_subject` ``(i, SynthConfig(n_subjects,
    n_trials, seed))``; its trials (63 s: 3 s baseline, 60 s "video") are laid end to end into one
    recording (``p01``: two recordings, ``run1`` and ``run2``, half its trials each), the bipolar
    EOG is turned into four monopolar electrodes (:func:`monopolar_eog`, seeded by ``[seed, i, r]``)
    and the recording is written to ``<folder>/raw/<subject>_<id>.<fmt>``; the trials table to
    ``<folder>/trials.csv``. Deterministic for a given ``seed``.

    Parameters
    ----------
    folder : path-like
        Where ``raw/`` and ``trials.csv`` go (created if needed; existing files are replaced).
    n_subjects : int
        Subjects ``p01`` ... (at least 1).
    n_trials : int
        Trials per subject (at least 2: ``p01`` is split in two).
    seed : int
        The generator's seed.
    fmt : {'edf', 'bdf'}

    Returns
    -------
    ExampleSet
    """
    if n_subjects < 1 or n_trials < 2:
        raise ValueError(f"need n_subjects >= 1 and n_trials >= 2, got {n_subjects}, {n_trials}")
    folder, fs, fmt = Path(folder), synthetic.FS, _fmt(fmt)
    cfg = synthetic.SynthConfig(n_subjects=n_subjects, n_trials=n_trials, seed=seed)
    recordings, rows, originals = [], [], {}
    for i in range(n_subjects):
        subject = f"p{i + 1:02d}"
        gen = synthetic.generate_subject(i, cfg)  # data (n_trials, 40, 8064) µV, labels (n_trials, 4)
        for r, trials in enumerate(np.array_split(np.arange(n_trials), 2 if i == 0 else 1)):
            rec_id = f"run{r + 1}"
            eeg = np.concatenate(gen["data"][trials, :32], axis=1)  # (32, n * 8064) trials end to end
            bipolar = np.concatenate(gen["data"][trials, 32:34], axis=1)  # (2, T) hEOG, vEOG
            eog = monopolar_eog(bipolar[0], bipolar[1], fs, np.random.default_rng([seed, i, r]))  # (4, T)
            name = f"{subject}_{rec_id}.{fmt}"
            write_recording(folder / "raw" / name, eeg, eog, fs, synthetic.EEG_CHANNELS, EOG_ELECTRODES, fmt)
            originals[(subject, rec_id)] = (eeg, bipolar, eog)
            recordings.append(dict(subject=subject, id=rec_id, file=f"raw/{name}"))
            rows += _trial_rows(subject, rec_id, trials, gen["labels"])
    table = pd.DataFrame(rows)
    with atomic_write(folder / "trials.csv", "w") as fh:
        table.to_csv(fh, index=False)
    return ExampleSet(recordings, table, originals)


def isolated_onsets(onsets_s, end_s: float, baseline_s: float, duration_s: float) -> np.ndarray:
    """Which stimulus onsets can be trials: no other onset inside the baseline or the trial, both in the recording.

    Onset ``o`` is kept when the previous onset (or the recording's start, 0) lies at least
    ``baseline_s`` before it and the next onset (or the recording's end) at least ``duration_s``
    after it. (So no other stimulus falls inside ``[o - baseline_s, o + duration_s)``; a kept trial
    may still end inside the next kept trial's baseline.) Used for the EEGLAB tutorial's
    ``square`` stimuli in notebook 06.

    Parameters
    ----------
    onsets_s : array-like, shape (n,)
        Stimulus onsets, s from the start of the recording, increasing.
    end_s : float
        The recording's length, s.
    baseline_s, duration_s : float
        The baseline before and the trial after each onset, s.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    onsets = np.asarray(onsets_s, dtype=float)
    if onsets.ndim != 1 or np.any(np.diff(onsets) < 0):
        raise ValueError("onsets_s must be one increasing sequence of times")
    after = np.diff(np.append(onsets, end_s))  # (n,) to the next onset or the end
    before = np.diff(np.insert(onsets, 0, 0.0))  # (n,) from the previous onset or the start
    return (after >= duration_s) & (before >= baseline_s)
