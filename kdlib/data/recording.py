"""The per-subject ``Recording`` every later step consumes, and its MNE views.

Introduced in ``notebooks/01_data_preparation.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Recording", "RATING_NAMES", "standard_montage"]

RATING_NAMES: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
_UV = 1e-6  # kdlib keeps microvolts; MNE wants volts


def standard_montage():
    """MNE's template 10-20 montage (``colin27_1020`` from MNE 1.13, ``standard_1020`` before)."""
    import mne

    builtin = mne.channels.get_builtin_montages()
    return mne.channels.make_standard_montage("colin27_1020" if "colin27_1020" in builtin else "standard_1020")


@dataclass(frozen=True, eq=False)
class Recording:
    """One subject's trials, EEG and EOG, with self-assessment ratings.

    Attributes
    ----------
    subject : str
        Subject id, e.g. ``"s01"``.
    eeg : ndarray, shape (n_trials, n_eeg, n_samples), float32, microvolts
    eog : ndarray, shape (n_trials, n_eog, n_samples), float32, microvolts
        Bipolar EOG derivations (``hEOG``, ``vEOG`` for DEAP).
    ratings : ndarray, shape (n_trials, n_ratings), float32
        Columns named by ``rating_names`` (DEAP: valence, arousal, dominance, liking, 1-9).
    eeg_channels, eog_channels : tuple of str
    fs : float
        Sampling rate, Hz.
    trial_ids : ndarray, shape (n_trials,), int
        Identifier of each trial (DEAP: the video number 1-40).
    baseline_s : float
        Length of the pre-trial baseline at the start of every trial, s (0 if none).
    source : str
        Where it came from (a file path), for error messages and provenance.
    rating_names : tuple of str
    """

    subject: str
    eeg: np.ndarray
    eog: np.ndarray
    ratings: np.ndarray
    eeg_channels: tuple[str, ...]
    eog_channels: tuple[str, ...]
    fs: float
    trial_ids: np.ndarray
    baseline_s: float = 0.0
    source: str = ""
    rating_names: tuple[str, ...] = field(default=RATING_NAMES)

    def __post_init__(self):
        where = self.source or self.subject
        if self.eeg.ndim != 3 or self.eog.ndim != 3:
            raise ValueError(f"{where}: eeg and eog must be (n_trials, n_channels, n_samples), "
                             f"got {self.eeg.shape} and {self.eog.shape}")
        n, _, t = self.eeg.shape
        if self.eog.shape[0] != n or self.eog.shape[2] != t:
            raise ValueError(f"{where}: eog shape {self.eog.shape} does not match eeg {self.eeg.shape}")
        if self.eeg.shape[1] != len(self.eeg_channels) or self.eog.shape[1] != len(self.eog_channels):
            raise ValueError(f"{where}: channel names do not match the channel axis")
        if self.ratings.shape != (n, len(self.rating_names)):
            raise ValueError(f"{where}: ratings shape {self.ratings.shape}, expected "
                             f"({n}, {len(self.rating_names)})")
        if len(self.trial_ids) != n or len(set(np.asarray(self.trial_ids).tolist())) != n:
            raise ValueError(f"{where}: trial_ids must be {n} distinct values")
        if not 0 <= self.baseline_s * self.fs < t:
            raise ValueError(f"{where}: baseline of {self.baseline_s} s does not fit the trials")

    @property
    def n_trials(self) -> int:
        return self.eeg.shape[0]

    @property
    def n_samples(self) -> int:
        return self.eeg.shape[2]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.eeg_channels) + tuple(self.eog_channels)

    def rating(self, name: str) -> np.ndarray:
        """The ratings of one scale, shape (n_trials,)."""
        if name not in self.rating_names:
            raise KeyError(f"unknown rating {name!r}; have {self.rating_names}")
        return self.ratings[:, self.rating_names.index(name)]

    # --- MNE views ---------------------------------------------------------------------------

    def info(self):
        """An :class:`mne.Info` with EEG and EOG channel types and the standard 10-20 montage."""
        import mne

        info = mne.create_info(list(self.channels), sfreq=float(self.fs),
                               ch_types=["eeg"] * len(self.eeg_channels) + ["eog"] * len(self.eog_channels))
        montage = standard_montage()
        known = {name.lower() for name in montage.ch_names}
        unknown = [ch for ch in self.eeg_channels if ch.lower() not in known]
        info.set_montage(montage, match_case=False, on_missing="ignore")
        if unknown:
            info["description"] = f"no 10-20 position for: {', '.join(unknown)}"
        return info

    def to_raw(self, trial: int = 0):
        """One trial (index, not id) as an :class:`mne.io.RawArray` in volts, EEG + EOG."""
        import mne

        x = np.concatenate([self.eeg[trial], self.eog[trial]], axis=0).astype(np.float64) * _UV
        raw = mne.io.RawArray(x, self.info(), verbose="error")
        return raw

    def to_epochs(self):
        """All trials as an :class:`mne.EpochsArray` (tmin = -baseline_s), ratings as metadata."""
        import mne
        import pandas as pd

        x = np.concatenate([self.eeg, self.eog], axis=1).astype(np.float64) * _UV
        meta = pd.DataFrame(self.ratings, columns=list(self.rating_names))
        meta.insert(0, "trial_id", np.asarray(self.trial_ids))
        return mne.EpochsArray(x, self.info(), tmin=-float(self.baseline_s), metadata=meta,
                               baseline=None, verbose="error")
