"""DEAP's original recordings (``data_original/sNN.bdf``) through MNE into a :class:`Recording`.

Introduced in ``notebooks/06_bring_your_own_data.ipynb``.

Each file is a BioSemi BDF at 512 Hz with 48 channels: 32 EEG (participants 1-22 in the
Twente/BioSemi order, 23-32 in the Geneva order of the preprocessed release; both are picked
**by name**), EXG1-EXG8 (EXG1/EXG2 = hEOG1/hEOG2, EXG3/EXG4 = vEOG1/vEOG2, then zEMG and
tEMG), GSR1, GSR2, Erg1, Erg2, Resp, Plet, Temp and the ``Status`` trigger channel.

What :func:`load_original_subject` does:

1. Decode ``Status``: keep the low 8 bits (``& 0xFF``; BioSemi sets status bits above them,
   and MNE already drops everything above bit 16) and find every rise to code 4 (start of a
   music video; 60 s of video follow).
2. Match the k-th video start to the row ``Trial == k`` of ``participant_ratings.csv`` (the
   files are in presentation order), which gives the video (``Experiment_id``, the trial id)
   and the four ratings. Trials are then sorted by video, as in the preprocessed release.
3. EEG and EXG1-EXG4 are resampled to 128 Hz by :meth:`mne.io.Raw.resample` (the whole
   recording, before cutting); hEOG = EXG1 - EXG2 and vEOG = EXG3 - EXG4 (microvolts).
4. Each trial keeps the **3 s before the video start** as its baseline, then 60 s of video:
   8064 samples, the layout of the preprocessed files. DEAP's description says only that the
   preprocessed trials carry a 3 s pre-trial baseline; the experiment showed a fixation cross
   (Status code 3, 5 s) before each video, so the 3 s before code 4 are read as that baseline.
   This is kdlib's reading, not a documented rule.

Unlike the preprocessed release, the EEG is left as recorded unless ``eeg_band`` and
``eeg_reference`` are given (the release used 4-45 Hz and the common average, plus an EOG
artefact removal kdlib does not redo). The EOG is not filtered here: ``make_windows``
band-passes it, as for every other source.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from .custom import ChannelMap, EogDerivation, Preprocessing, process_raw
from .deap import BASELINE_S, EEG_CHANNELS, EOG_CHANNELS, FS, RATING_RANGE, DeapFormatError
from .mne_io import recording_from_raw
from .recording import RATING_NAMES, Recording

__all__ = [
    "FS_ORIGINAL",
    "VIDEO_START",
    "STATUS_MASK",
    "TRIAL_S",
    "TWENTE_CHANNELS",
    "EXG_CHANNELS",
    "PERIPHERAL_BDF_CHANNELS",
    "EOG_DERIVATIONS",
    "decode_status",
    "video_onsets",
    "read_participant_ratings",
    "load_original_subject",
]

FS_ORIGINAL = 512.0  #: sampling rate of the BDF files, Hz
VIDEO_START = 4  #: Status code of a music video's start
STATUS_MASK = 0xFF  #: the trigger code is in the low 8 bits of Status
TRIAL_S = 60.0  #: video length, s

#: EEG order of participants 1-22 (Twente, BioSemi's cap order). 23-32 use ``EEG_CHANNELS``.
TWENTE_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F7", "F3", "FC1", "FC5", "T7", "C3", "CP1", "CP5", "P7", "P3", "Pz", "PO3",
    "O1", "Oz", "O2", "PO4", "P4", "P8", "CP6", "CP2", "C4", "T8", "FC6", "FC2", "F4", "F8",
    "AF4", "Fp2", "Fz", "Cz",
)  # fmt: skip
EXG_CHANNELS: tuple[str, ...] = tuple(f"EXG{i}" for i in range(1, 9))
PERIPHERAL_BDF_CHANNELS: tuple[str, ...] = ("GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Plet", "Temp", "Status")
#: hEOG = EXG1 - EXG2, vEOG = EXG3 - EXG4.
EOG_DERIVATIONS: tuple[EogDerivation, ...] = (EogDerivation(EOG_CHANNELS[0], "EXG1", "EXG2"),
                                              EogDerivation(EOG_CHANNELS[1], "EXG3", "EXG4"))
_RATING_COLUMNS = ("Participant_id", "Trial", "Experiment_id", "Valence", "Arousal", "Dominance", "Liking")


def decode_status(status: np.ndarray, mask: int = STATUS_MASK) -> np.ndarray:
    """Trigger codes of a Status channel: ``status & mask`` as int64.

    Parameters
    ----------
    status : ndarray, shape (n_times,)
        Status values as MNE reads them (integers stored as floats; may have high bits set).
    mask : int
        Bits that hold the trigger code (default :data:`STATUS_MASK`, the low 8 bits).

    Returns
    -------
    ndarray, shape (n_times,), int64
    """
    return np.asarray(status).astype(np.int64) & mask


def video_onsets(status: np.ndarray, code: int = VIDEO_START, mask: int = STATUS_MASK) -> np.ndarray:
    """Sample indices where the decoded Status rises to ``code`` (a code held for several
    samples counts once).

    Parameters
    ----------
    status : ndarray, shape (n_times,)
        The Status channel as MNE reads it.
    code : int
        The trigger code (default :data:`VIDEO_START`).
    mask : int
        Bits of Status that hold the code (default :data:`STATUS_MASK`).

    Returns
    -------
    ndarray, shape (n_events,), int
    """
    is_code = decode_status(status, mask) == code  # (n_times,)
    return np.flatnonzero(is_code & ~np.concatenate([[False], is_code[:-1]]))


def read_participant_ratings(ratings_csv: str | os.PathLike, participant: int):
    """One participant's rows of ``participant_ratings.csv``, in presentation order (``Trial``).

    Parameters
    ----------
    ratings_csv : path-like
        DEAP's ``participant_ratings.csv``.
    participant : int
        ``Participant_id`` (1-32).

    Returns
    -------
    pandas.DataFrame
        The participant's rows, sorted by ``Trial``; ratings checked to lie in [1, 9].

    Raises
    ------
    DeapFormatError
        Missing file or columns, or no row for the participant.
    """
    import pandas as pd

    path = Path(ratings_csv)
    if not path.is_file():
        raise DeapFormatError(f"{path}: ratings file not found")
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # UnicodeDecodeError is a ValueError
        raise DeapFormatError(f"{path}: not a readable CSV file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in _RATING_COLUMNS if c not in table.columns]
    if missing:
        raise DeapFormatError(f"{path}: missing column(s) {missing}")
    table = table.assign(**{c: pd.to_numeric(table[c], errors="coerce") for c in _RATING_COLUMNS})
    rows = table[table["Participant_id"] == participant].sort_values("Trial")
    if rows.empty:
        raise DeapFormatError(f"{path}: no ratings for participant {participant}")
    _check_ratings(rows, path, participant)
    return rows


def _check_ratings(rows, path: Path, participant: int) -> None:
    """Whole, unique trial and video numbers and ratings on DEAP's scale [1, 9]; raise naming the row."""
    for col in ("Trial", "Experiment_id"):
        values = rows[col].to_numpy(np.float64)
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise DeapFormatError(f"{path}: participant {participant}: column {col} must hold whole numbers")
        if len(np.unique(values)) != len(values):
            raise DeapFormatError(f"{path}: participant {participant}: a {col} number appears twice")
    lo, hi = RATING_RANGE
    for col in _RATING_COLUMNS[3:]:
        values = rows[col].to_numpy(np.float64)
        bad = ~(np.isfinite(values) & (values >= lo) & (values <= hi))
        if bad.any():
            trial = rows["Trial"].to_numpy()[bad][0]
            raise DeapFormatError(f"{path}: participant {participant}, trial {trial:g}: {col} = {values[bad][0]:g} "
                                  f"is not a rating in [{lo:g}, {hi:g}]")


def _participant_from_name(path: Path) -> int:
    m = re.match(r"^s(\d+)\.bdf$", path.name, flags=re.IGNORECASE)
    if not m:
        raise DeapFormatError(f"{path}: cannot tell the participant from the name (expected sNN.bdf): "
                              "pass participant=")
    return int(m.group(1))


def _canonical_names(raw, path: Path) -> dict[str, str]:
    """File name -> kdlib name for the EEG and EXG channels (matched without regard to case)."""
    by_lower = {ch.lower(): ch for ch in raw.ch_names}
    wanted = EEG_CHANNELS + EXG_CHANNELS[:4]
    missing = [ch for ch in wanted if ch.lower() not in by_lower]
    if missing:
        raise DeapFormatError(f"{path}: channel(s) {missing} not found; the file has {raw.ch_names}")
    return {by_lower[ch.lower()]: ch for ch in wanted if by_lower[ch.lower()] != ch}


def load_original_subject(bdf_path: str | os.PathLike, ratings_csv: str | os.PathLike,
                          participant: int | None = None, *, fs: float = FS,
                          eeg_band: tuple[float, float] | None = None, eeg_reference: str | None = None,
                          video_code: int = VIDEO_START, mask: int = STATUS_MASK) -> Recording:
    """Read one DEAP original BDF file into a :class:`~kdlib.data.recording.Recording`.

    Parameters
    ----------
    bdf_path : path-like
        ``data_original/sNN.bdf``.
    ratings_csv : path-like
        DEAP's ``participant_ratings.csv``.
    participant : int, optional
        Participant id (default: the ``NN`` of the file name).
    fs : float
        Target sampling rate, Hz (128, as the preprocessed release).
    eeg_band : (low, high), optional
        EEG band-pass, Hz (the preprocessed release used (4, 45)). Default: none.
    eeg_reference : {'average', None}
        EEG re-reference (the release used the average). Default: as recorded.
    video_code, mask : int
        Status code of a video start and the mask that isolates the codes.

    Returns
    -------
    Recording
        Trials sorted by video (``trial_ids`` = ``Experiment_id``), each 3 s baseline + 60 s,
        EEG in the Geneva order of :data:`~kdlib.data.deap.EEG_CHANNELS`, hEOG and vEOG in
        microvolts, ratings valence, arousal, dominance, liking.

    Raises
    ------
    DeapFormatError
        Missing channels, a number of video starts that differs from the number of ratings,
        or a trial outside the recording; the message names the file.
    """
    import mne

    path = Path(bdf_path)
    if not path.is_file():
        raise DeapFormatError(f"{path}: file not found")
    participant = _participant_from_name(path) if participant is None else int(participant)
    ratings = read_participant_ratings(ratings_csv, participant)
    raw = mne.io.read_raw_bdf(path, preload=False, verbose="error")
    if "Status" not in raw.ch_names:
        raise DeapFormatError(f"{path}: no Status channel")
    onsets = video_onsets(raw.get_data(picks=["Status"])[0], video_code, mask) / raw.info["sfreq"]  # s
    if len(onsets) != len(ratings):
        raise DeapFormatError(f"{path}: {len(onsets)} video starts (Status code {video_code}) but "
                              f"{len(ratings)} rated trials for participant {participant} in {ratings_csv}")
    raw.rename_channels(_canonical_names(raw, path))
    processed = process_raw(raw, ChannelMap(EEG_CHANNELS, EOG_DERIVATIONS),
                            Preprocessing(fs=fs, eeg_band=eeg_band, eeg_reference=eeg_reference))
    order = np.argsort(ratings["Experiment_id"].to_numpy(), kind="stable")  # video order
    try:
        rec = recording_from_raw(
            processed, f"s{participant:02d}", onsets_s=onsets[order], duration_s=TRIAL_S,
            ratings=ratings[["Valence", "Arousal", "Dominance", "Liking"]].to_numpy(np.float32)[order],
            trial_ids=ratings["Experiment_id"].to_numpy(np.int64)[order], baseline_s=BASELINE_S,
            eeg_picks=list(EEG_CHANNELS), eog_picks=list(EOG_CHANNELS), rating_names=RATING_NAMES)
    except ValueError as exc:
        raise DeapFormatError(f"{path}: {exc}") from None
    return replace(rec, source=str(path))
