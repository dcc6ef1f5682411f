"""Preprocessing: EOG band-pass, baseline correction, windows, labels, normalisation.

Introduced in ``notebooks/01_data_preparation.ipynb``.

One subject's :class:`~kdlib.data.recording.Recording` becomes a :class:`WindowSet`: fixed-length
windows of EEG and EOG, each carrying its subject and trial id, so that folds can be split by
trial (never windows of one trial on both sides; see :mod:`kdlib.data.splits`).

Steps, in order (:func:`make_windows`):

1. EOG band-pass (zero-phase IIR). DEAP's EEG arrives already band-passed (4-45 Hz) and
   average-referenced, but its EOG was only downsampled: it carries DC offsets and drift.
2. Baseline correction: subtract each channel's mean over the 3 s pre-trial baseline.
3. Drop the baseline and cut the trial into windows (``window_s``, ``stride_s``).
4. Ratings are kept as floats; binary labels are made on demand with an explicit rule
   (:func:`binarize`), because libraries disagree on a rating of exactly 5.

Normalisation (:class:`ChannelScaler`) is *not* part of preparation: it is fitted on the
training windows of each fold only.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from .recording import RATING_NAMES, Recording

__all__ = [
    "PrepConfig",
    "SMOKE",
    "DEFAULT",
    "PAPER",
    "TASKS",
    "WindowSet",
    "binarize",
    "filter_eog",
    "baseline_correct",
    "make_windows",
    "concat_windows",
    "class_balance",
    "majority_class",
    "majority_accuracy",
    "majority_f1",
    "ChannelScaler",
]

TASKS: tuple[str, ...] = ("valence", "arousal")


_SECONDS = {"window_s": (0.05, 3600.0), "stride_s": (0.01, 3600.0)}  # allowed window length and step, s


def _is_number(value) -> bool:
    """A finite real number (not a bool, not NaN or inf)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


@dataclass(frozen=True)
class PrepConfig:
    """How a Recording becomes windows. Every field is part of the cache key."""

    window_s: float = 4.0  # window length, s (4 s at 128 Hz = 512 samples)
    stride_s: float = 4.0  # step between window starts, s (= window_s: no overlap)
    baseline: Literal["mean", "none"] = "mean"  # subtract the pre-trial baseline mean per channel
    eog_band: tuple[float, float] | None = (0.1, 15.0)  # EOG band-pass, Hz (None: leave raw)
    eog_filter_order: int = 4  # Butterworth order of the EOG band-pass (applied forward-backward)
    threshold: float = 5.0  # rating threshold between low and high
    rule: Literal[">", ">="] = ">"  # high if rating > threshold (a rating of exactly 5 is low)

    def __post_init__(self):
        for name, (lo, hi) in _SECONDS.items():
            value = getattr(self, name)
            if not _is_number(value) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number of seconds in [{lo:g}, {hi:g}], got {value!r}")
        if not _is_number(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
        if not isinstance(self.eog_filter_order, int) or not 1 <= self.eog_filter_order <= 16:
            raise ValueError(f"eog_filter_order must be a whole number in [1, 16], got {self.eog_filter_order!r}")
        if self.baseline not in ("mean", "none"):
            raise ValueError(f"baseline must be 'mean' or 'none', got {self.baseline!r}")
        if self.rule not in (">", ">="):
            raise ValueError(f"rule must be '>' or '>=', got {self.rule!r}")
        band = self.eog_band
        if band is not None and not (isinstance(band, tuple) and len(band) == 2 and all(map(_is_number, band))
                                     and 0 < band[0] < band[1]):
            raise ValueError(f"eog_band must be (low, high) in Hz with 0 < low < high, got {band!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


#: The reading of the paper kdlib adopts: 4 s windows (512 samples at 128 Hz) without overlap.
PAPER = PrepConfig(window_s=4.0, stride_s=4.0)
#: One configuration under three names (kept because callers and ``--preset`` use them): the paper
#: gives no other window length or step, and smoke runs shrink subjects and epochs, never the windows.
DEFAULT = PAPER
SMOKE = PAPER


def binarize(ratings: np.ndarray, threshold: float = 5.0, rule: str = ">") -> np.ndarray:
    """Ratings -> 0/1 labels (1 = high). ``rule`` '>' counts a rating equal to the threshold
    as low, '>=' as high.

    Parameters
    ----------
    ratings : ndarray
    threshold : float
    rule : {'>', '>='}

    Returns
    -------
    ndarray of int64
        Same shape as ``ratings``.
    """
    if rule == ">":
        return (np.asarray(ratings) > threshold).astype(np.int64)
    if rule == ">=":
        return (np.asarray(ratings) >= threshold).astype(np.int64)
    raise ValueError(f"rule must be '>' or '>=', got {rule!r}")


@dataclass(frozen=True, eq=False)
class WindowSet:
    """Windows of one or more subjects, every window tagged with its subject and trial.

    Attributes
    ----------
    eeg : ndarray, shape (N, n_eeg, T), float32
    eog : ndarray, shape (N, n_eog, T), float32
    ratings : ndarray, shape (N, 4), float32 (valence, arousal, dominance, liking)
    subject : ndarray, shape (N,), str
    trial : ndarray, shape (N,), int -- trial id within its subject
    start_s : ndarray, shape (N,), float -- window start after the trial onset, s
    fs : float
    eeg_channels, eog_channels : tuple of str
    threshold, rule : the label rule (see :func:`binarize`)
    """

    eeg: np.ndarray
    eog: np.ndarray
    ratings: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    start_s: np.ndarray
    fs: float
    eeg_channels: tuple[str, ...]
    eog_channels: tuple[str, ...]
    threshold: float = 5.0
    rule: str = ">"
    rating_names: tuple[str, ...] = field(default=RATING_NAMES)

    def __post_init__(self):
        n = len(self.eeg)
        for name in ("eog", "ratings", "subject", "trial", "start_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"WindowSet: {name} has {len(getattr(self, name))} rows, eeg has {n}")

    def __len__(self) -> int:
        return len(self.eeg)

    @property
    def n_samples(self) -> int:
        return self.eeg.shape[-1]

    @property
    def groups(self) -> np.ndarray:
        """(N,) int: one code per (subject, trial) pair -- the unit folds must not split."""
        keys = np.char.add(np.char.add(self.subject.astype(str), "/"), self.trial.astype(str))
        return np.unique(keys, return_inverse=True)[1].astype(np.int64)

    def labels(self, task: str) -> np.ndarray:
        """(N,) int64 binary labels of ``task`` ('valence' or 'arousal') under the set's rule."""
        if task not in self.rating_names:
            raise KeyError(f"unknown task {task!r}; choose from {TASKS}")
        return binarize(self.ratings[:, self.rating_names.index(task)], self.threshold, self.rule)

    def subset(self, idx) -> WindowSet:
        """A WindowSet of the windows at ``idx`` (an index array or a boolean mask)."""
        idx = np.asarray(idx)
        return replace(self, eeg=self.eeg[idx], eog=self.eog[idx], ratings=self.ratings[idx],
                       subject=self.subject[idx], trial=self.trial[idx], start_s=self.start_s[idx])

    def subjects(self) -> list[str]:
        """The subject ids present, sorted."""
        return sorted(np.unique(self.subject).tolist())

    def trial_table(self):
        """One row per trial: subject, trial, n_windows and the four ratings (pandas)."""
        import pandas as pd

        df = pd.DataFrame(self.ratings, columns=list(self.rating_names))
        df.insert(0, "trial", self.trial)
        df.insert(0, "subject", self.subject)
        agg = {name: "first" for name in self.rating_names}
        out = df.groupby(["subject", "trial"], sort=True).agg(n_windows=("trial", "size"), **{
            k: (k, v) for k, v in agg.items()})
        return out.reset_index()


# --- steps ---------------------------------------------------------------------------------

def filter_eog(eog: np.ndarray, fs: float, band: tuple[float, float], order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass of EOG trials with :func:`mne.filter.filter_data`.

    Parameters
    ----------
    eog : ndarray, shape (n_trials, n_eog, n_samples)
    fs : float
        Sampling rate, Hz.
    band : (float, float)
        Pass band, Hz.
    order : int
        Butterworth order (applied forward and backward: twice the attenuation, no phase shift).

    Returns
    -------
    ndarray, shape (n_trials, n_eog, n_samples), float32
    """
    import mne

    out = mne.filter.filter_data(eog.astype(np.float64), sfreq=fs, l_freq=band[0], h_freq=band[1],
                                 method="iir", iir_params=dict(_eog_filter(fs, band, order)), verbose="error")
    return out.astype(np.float32)  # (n_trials, n_eog, n_samples)


@functools.lru_cache(maxsize=16)
def _eog_filter(fs: float, band: tuple[float, float], order: int) -> dict:
    """MNE's IIR design (second-order sections and padding) for :func:`filter_eog`, made once per
    setting: :func:`mne.filter.filter_data` uses a given ``sos`` as it is."""
    import mne

    iir = dict(order=order, ftype="butter", output="sos")
    return mne.filter.construct_iir_filter(iir, f_pass=list(band), f_stop=None, sfreq=fs, btype="bandpass",
                                           return_copy=False, verbose="error")


def baseline_correct(x: np.ndarray, n_baseline: int) -> np.ndarray:
    """Subtract each channel's mean over the first ``n_baseline`` samples of its trial.

    Parameters
    ----------
    x : ndarray, shape (n_trials, n_channels, n_samples)
    n_baseline : int
        Samples of pre-trial baseline at the start of each trial (0 or less: ``x`` is returned
        unchanged).

    Returns
    -------
    ndarray, shape (n_trials, n_channels, n_samples)
    """
    if n_baseline <= 0:
        return x
    return x - x[..., :n_baseline].mean(axis=-1, keepdims=True)


def _baseline_mean(x: np.ndarray, n_baseline: int) -> np.ndarray | None:
    """(n_trials, C, T) -> (n_trials, C, 1): the mean over the baseline, as :func:`baseline_correct` takes it."""
    return x[..., :n_baseline].mean(axis=-1, keepdims=True) if n_baseline > 0 else None


def _cut(x: np.ndarray, win: int, stride: int, minus: np.ndarray | None = None) -> np.ndarray:
    """(n_trials, C, T) -> (n_trials * n_win, C, win) float32, windows of a trial consecutive.

    ``minus`` (n_trials, C, 1), e.g. the baseline mean, is subtracted on the way: one pass over
    the data, the same numbers as :func:`baseline_correct` followed by the cut.
    """
    views = np.lib.stride_tricks.sliding_window_view(x, win, axis=-1)[..., ::stride, :]  # (n, C, n_win, win)
    n, c, n_win, _ = views.shape
    out = np.empty((n, n_win, c, win), dtype=np.float32)  # (n, n_win, C, win)
    src = views.transpose(0, 2, 1, 3)  # (n, n_win, C, win)
    if minus is None:
        np.copyto(out, src, casting="same_kind")
    else:
        np.subtract(src, minus[:, None], out=out, casting="same_kind")  # minus: (n, 1, C, 1)
    return out.reshape(n * n_win, c, win)


def make_windows(rec: Recording, config: PrepConfig = DEFAULT) -> WindowSet:
    """Prepare one subject: EOG band-pass, baseline correction, windows.

    Parameters
    ----------
    rec : Recording
    config : PrepConfig

    Returns
    -------
    WindowSet
        ``n_trials * n_windows_per_trial`` windows, the windows of a trial consecutive.
    """
    fs = rec.fs
    win, stride = int(round(config.window_s * fs)), int(round(config.stride_s * fs))
    n_base = int(round(rec.baseline_s * fs))
    n_trial = rec.n_samples - n_base
    if win > n_trial:
        raise ValueError(f"{rec.source or rec.subject}: a {config.window_s} s window is longer than "
                         f"the {n_trial / fs:.1f} s trials")
    eog = rec.eog
    if config.eog_band is not None:
        eog = filter_eog(eog, fs, config.eog_band, config.eog_filter_order)
    mean = config.baseline == "mean"
    eeg_w = _cut(rec.eeg[..., n_base:], win, stride, _baseline_mean(rec.eeg, n_base) if mean else None)  # (N, n_eeg, win)
    eog_w = _cut(eog[..., n_base:], win, stride, _baseline_mean(eog, n_base) if mean else None)  # (N, n_eog, win)
    n_win = len(eeg_w) // rec.n_trials
    return WindowSet(
        eeg=eeg_w,
        eog=eog_w,
        ratings=np.repeat(np.asarray(rec.ratings, np.float32), n_win, axis=0),
        subject=np.full(len(eeg_w), rec.subject, dtype=f"<U{max(8, len(rec.subject))}"),
        trial=np.repeat(np.asarray(rec.trial_ids, np.int64), n_win),
        start_s=np.tile(np.arange(n_win) * stride / fs, rec.n_trials),
        fs=float(fs),
        eeg_channels=tuple(rec.eeg_channels),
        eog_channels=tuple(rec.eog_channels),
        threshold=config.threshold,
        rule=config.rule,
        rating_names=tuple(rec.rating_names),
    )


def concat_windows(parts: list[WindowSet]) -> WindowSet:
    """Concatenate WindowSets of the same layout (e.g. several subjects)."""
    if not parts:
        raise ValueError("concat_windows: nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        same = (p.fs, p.eeg_channels, p.eog_channels, p.threshold, p.rule, p.n_samples) == (
            first.fs, first.eeg_channels, first.eog_channels, first.threshold, first.rule, first.n_samples)
        if not same:
            raise ValueError("concat_windows: the window sets differ in rate, channels, length or label rule")
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    width = max(p.subject.dtype.itemsize // 4 for p in parts)
    return replace(first, eeg=cat("eeg"), eog=cat("eog"), ratings=cat("ratings"),
                   subject=cat("subject").astype(f"<U{width}"), trial=cat("trial"), start_s=cat("start_s"))


# --- labels --------------------------------------------------------------------------------

def majority_class(y_train: np.ndarray) -> int:
    """The majority class of 0/1 labels, ties to class 1: what the majority-class floor predicts.

    Parameters
    ----------
    y_train : ndarray of int
        0/1 labels (the training labels: the floor never sees the test labels).

    Returns
    -------
    int
    """
    y_train = np.asarray(y_train)
    if len(y_train) == 0:
        raise ValueError("majority_class: empty labels")
    return int(y_train.mean() >= 0.5)


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray | None = None) -> float:
    """Accuracy of always predicting the majority class of ``y_train`` (on ``y_test``, or on
    ``y_train`` itself). Ties go to class 1. The floor every result must beat.

    Parameters
    ----------
    y_train : ndarray of int
        0/1 labels the majority is taken from.
    y_test : ndarray of int, optional
        0/1 labels it is scored on (default ``y_train``).

    Returns
    -------
    float
    """
    y_train = np.asarray(y_train)
    y_test = y_train if y_test is None else np.asarray(y_test)
    if len(y_train) == 0 or len(y_test) == 0:
        raise ValueError("majority_accuracy: empty labels")
    return float((y_test == majority_class(y_train)).mean())


def majority_f1(y_train: np.ndarray, y_test: np.ndarray | None = None) -> float:
    """Macro F1 of always predicting the majority class of ``y_train`` (on ``y_test``, or on
    ``y_train`` itself): the floor of a macro F1, at most 1/2 (the other class scores 0).

    Parameters
    ----------
    y_train : ndarray of int
        0/1 labels the majority is taken from (ties go to class 1).
    y_test : ndarray of int, optional
        0/1 labels it is scored on (default ``y_train``).

    Returns
    -------
    float
    """
    from sklearn.metrics import f1_score

    y_test = np.asarray(y_train if y_test is None else y_test)
    guess = np.full_like(y_test, majority_class(y_train))
    return float(f1_score(y_test, guess, average="macro", labels=[0, 1], zero_division=0))


def class_balance(ws: WindowSet):
    """Per subject and task: trials, high/low counts, share of high, majority-class accuracy.

    Returns
    -------
    pandas.DataFrame
        One row per (subject, task), plus an ``all`` row per task.
    """
    import pandas as pd

    trials = ws.trial_table()
    rows = []
    for task in TASKS:
        y = binarize(trials[task].to_numpy(), ws.threshold, ws.rule)
        for subject, mask in [(s, (trials["subject"] == s).to_numpy()) for s in ws.subjects()] + [
                ("all", np.ones(len(trials), bool))]:
            yt = y[mask]
            rows.append(dict(subject=subject, task=task, n_trials=int(mask.sum()), n_high=int(yt.sum()),
                             n_low=int((1 - yt).sum()), high_share=float(yt.mean()),
                             majority_acc=majority_accuracy(yt)))
    return pd.DataFrame(rows)


# --- normalisation -------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelScaler:
    """Per-channel z-scoring, fitted on training windows only (see :meth:`fit`).

    Attributes
    ----------
    eeg_mean, eeg_std : ndarray, shape (n_eeg, 1)
    eog_mean, eog_std : ndarray, shape (n_eog, 1)
    """

    eeg_mean: np.ndarray
    eeg_std: np.ndarray
    eog_mean: np.ndarray
    eog_std: np.ndarray

    @classmethod
    def fit(cls, train: WindowSet, eps: float = 1e-6) -> ChannelScaler:
        """Statistics over all training windows and samples, per channel.

        Parameters
        ----------
        train : WindowSet
            The teaching windows (never validation or test windows).
        eps : float
            Floor of each standard deviation (a flat channel is not divided by zero).

        Returns
        -------
        ChannelScaler
        """
        if len(train) == 0:
            raise ValueError("ChannelScaler.fit: no training windows")

        def stats(x):  # x: (N, C, T)
            mean = x.mean(axis=(0, 2), dtype=np.float64)[:, None]
            std = x.std(axis=(0, 2), dtype=np.float64)[:, None]
            return mean.astype(np.float32), np.maximum(std, eps).astype(np.float32)

        return cls(*stats(train.eeg), *stats(train.eog))

    def transform(self, ws: WindowSet) -> WindowSet:
        """A new WindowSet with z-scored EEG and EOG (float32)."""
        eeg = (ws.eeg - self.eeg_mean) / self.eeg_std  # (N, n_eeg, T)
        eog = (ws.eog - self.eog_mean) / self.eog_std  # (N, n_eog, T)
        return replace(ws, eeg=eeg.astype(np.float32, copy=False), eog=eog.astype(np.float32, copy=False))
