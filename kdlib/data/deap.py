"""DEAP file formats: the preprocessed Python (``sNN.dat``) and MATLAB (``sNN.mat``) releases.

Introduced in ``notebooks/01_data_preparation.ipynb``.

DEAP (Koelstra et al., 2012) is licensed per user: the kit never ships or downloads it. The
same functions read the synthetic DEAP-format set written by :mod:`kdlib.data.synthetic`.

Layout of one preprocessed subject file (a pickled ``dict``)::

    data    (40 trials, 40 channels, 8064 samples)   128 Hz, 3 s baseline + 60 s trial
    labels  (40 trials, 4)                             valence, arousal, dominance, liking in [1, 9]

The genuine files are Python-2 pickles; they are read with ``encoding="latin1"`` through a
restricted unpickler that only rebuilds numpy arrays (:mod:`kdlib.data.safepickle`): a ``.dat``
that asks for anything else (``os.system``, ``builtins.eval``, ...) is refused before any of it
runs, and so is one whose cost would be out of proportion to its size (containers nested
deeper than a DEAP file's, arrays declared larger than the bytes behind them). Python-3 files
of every pickle protocol are read too. A ``.mat`` file's compressed parts are measured before
scipy inflates them (:data:`MAT_LIMIT`).

Two readers share those rules: :func:`load_dat` copies the arrays into memory;
:func:`map_dat` (used by :func:`load_subject`) maps the file and returns read-only views of
the large arrays' bytes where they lie in the file, so preparing windows reads only the
channels it keeps and never holds a float64 copy of the whole subject.
"""

from __future__ import annotations

import mmap
import os
import pickle
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from ..io import atomic_write
from . import safepickle
from .recording import RATING_NAMES, Recording

__all__ = [
    "FS",
    "N_TRIALS",
    "N_CHANNELS",
    "N_SAMPLES",
    "BASELINE_S",
    "EEG_CHANNELS",
    "EOG_CHANNELS",
    "PERIPHERAL_CHANNELS",
    "ALL_CHANNELS",
    "EEG_IDX",
    "EOG_IDX",
    "RATING_NAMES",
    "DeapFormatError",
    "load_dat",
    "map_dat",
    "load_mat",
    "save_dat",
    "validate_deap_arrays",
    "subject_files",
    "load_subject",
    "subject_id_from_path",
]

FS = 128.0  #: sampling rate of the preprocessed release, Hz
N_TRIALS = 40  #: trials (music videos) per participant
N_CHANNELS = 40  #: 32 EEG + 8 peripheral
N_SAMPLES = 8064  #: 63 s at 128 Hz
BASELINE_S = 3.0  #: pre-trial baseline at the start of each trial, s

#: The 32 EEG channels in the order of the preprocessed files (Geneva order).
EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3",
    "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8",
    "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip
#: Bipolar EOG: hEOG = hEOG1 - hEOG2 (channel 33), vEOG = vEOG1 - vEOG2 (channel 34).
EOG_CHANNELS: tuple[str, ...] = ("hEOG", "vEOG")
#: Channels 35-40, only downsampled in the preprocessed release.
PERIPHERAL_CHANNELS: tuple[str, ...] = ("zEMG", "tEMG", "GSR", "Resp", "Plet", "Temp")
ALL_CHANNELS: tuple[str, ...] = EEG_CHANNELS + EOG_CHANNELS + PERIPHERAL_CHANNELS
EEG_IDX = np.arange(0, 32)  #: indices of the EEG channels in ``data``
EOG_IDX = np.array([32, 33])  #: indices of hEOG, vEOG in ``data``
RATING_RANGE = (1.0, 9.0)  #: self-assessment manikin scale


class DeapFormatError(ValueError):
    """A DEAP-format file is missing, truncated, unsafe or holds invalid arrays."""


# --- safe loading ---------------------------------------------------------------------------

_CORRUPT = (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, OverflowError, UnicodeError, struct.error)


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DeapFormatError(f"{path}: file not found")
    if not path.is_file():
        raise DeapFormatError(f"{path}: not a regular file (a folder or a device named like a subject file?)")
    if path.stat().st_size == 0:
        raise DeapFormatError(f"{path}: file is empty")


def _read_pickle(path: Path, mapped: bool):
    """Scan, unpickle and materialize one ``.dat`` (see :mod:`kdlib.data.safepickle`)."""
    with open(path, "rb", buffering=1 << 20) as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            safepickle.scan(fh, size)
            fh.seek(0)
            obj = safepickle.SafeUnpickler(fh).load()
            mm = None
            if mapped and safepickle.has_spans(obj):
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                if hasattr(mmap, "MADV_SEQUENTIAL"):
                    mm.madvise(mmap.MADV_SEQUENTIAL)
            return safepickle.materialize(obj, fh, size, mm)
        except safepickle.Refused as exc:
            raise DeapFormatError(f"{path}: refused to load: {exc}") from None
        except _CORRUPT as exc:
            raise DeapFormatError(f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                                  f"{type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def load_dat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Load one preprocessed DEAP Python file (``sNN.dat``) safely.

    Parameters
    ----------
    path : path-like
        A genuine DEAP Python-2 pickle, or one written from Python 3 at any protocol (e.g. by
        :func:`save_dat`).
    validate : bool
        Check shapes, rating range and finiteness (see :func:`validate_deap_arrays`).

    Returns
    -------
    dict
        ``{"data": (n_trials, 40, 8064) float array, "labels": (n_trials, 4) float array}``.

    Raises
    ------
    DeapFormatError
        Missing, empty or truncated file; a pickle that references anything but numpy array
        reconstruction, nests deeper than a DEAP file, or declares more bytes than it holds;
        missing keys; invalid arrays. The message names the file.

    Notes
    -----
    Memory and time are bounded by the file's size: every array is checked against the bytes
    behind it before it is allocated (:mod:`kdlib.data.safepickle`).
    """
    path = Path(path)
    _require_file(path)
    return _to_arrays(_read_pickle(path, mapped=False), path, validate)


def map_dat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Open one preprocessed DEAP Python file like :func:`load_dat`, without reading its arrays.

    The pickle is walked with the same rules as :func:`load_dat`, but every large array is
    returned as a **read-only view of the memory-mapped file**: its bytes are read from the OS
    page cache only when (and where) they are used. Preparing windows touches 34 of the 40
    channels once, instead of copying all of them into memory first.

    Parameters
    ----------
    path : path-like
    validate : bool
        As in :func:`load_dat` (the check reads every sample once).

    Returns
    -------
    dict
        ``{"data": ..., "labels": ...}``, same shapes, dtypes and values as :func:`load_dat`.
        ``data`` is read-only and valid while it is referenced (the mapping closes with it).

    Raises
    ------
    DeapFormatError
        As :func:`load_dat`, with the same messages.
    """
    path = Path(path)
    _require_file(path)
    return _to_arrays(_read_pickle(path, mapped=True), path, validate)


def load_mat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Load one preprocessed DEAP MATLAB file (``sNN.mat``) with :func:`scipy.io.loadmat`.

    Same return value and errors as :func:`load_dat`.

    Parameters
    ----------
    path : path-like
    validate : bool
        Check shapes, rating range and finiteness (see :func:`validate_deap_arrays`).
    """
    from scipy.io import loadmat

    path = Path(path)
    _require_file(path)
    _check_mat(path)
    try:
        obj = loadmat(path, variable_names=["data", "labels"])
    except Exception as exc:  # scipy raises many types for corrupt files
        raise DeapFormatError(
            f"{path}: not a readable MATLAB file (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return _to_arrays(obj, path, validate)


MAT_LIMIT = 2 * N_TRIALS * N_CHANNELS * N_SAMPLES * 8  #: bytes a DEAP .mat may hold once inflated (2 subjects)
_MI_COMPRESSED = 15  # MAT v5 element type of a zlib-compressed element


def _check_mat(path: Path) -> None:
    """Walk a MAT v5 file's elements before scipy reads it: each must fit in the file, and the
    compressed ones together may inflate to at most :data:`MAT_LIMIT` bytes (a zlib bomb of a
    few kilobytes would otherwise be inflated whole). Other formats are left to scipy."""
    with open(path, "rb") as fh:
        head, size = fh.read(128), os.fstat(fh.fileno()).st_size
        if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
            return
        order, total = "<" if head[126:128] == b"IM" else ">", 0
        while len(tag := fh.read(8)) == 8:
            mtype, nbytes = struct.unpack(order + "II", tag)
            if mtype >> 16:  # a small element: its bytes are in the tag
                continue
            if nbytes > size - fh.tell():
                raise DeapFormatError(f"{path}: not a readable MATLAB file (truncated or corrupt?): an element "
                                      f"declares {nbytes} bytes, {size - fh.tell()} are left")
            if mtype == _MI_COMPRESSED:
                total += _inflated_size(fh, nbytes, MAT_LIMIT - total, path)
            else:
                total += nbytes
                fh.seek(nbytes + (-nbytes % 8), os.SEEK_CUR)
            if total > MAT_LIMIT:
                raise DeapFormatError(f"{path}: refused to load: it holds more than {MAT_LIMIT} bytes of arrays "
                                      f"once inflated, more than a DEAP subject ({size} bytes on disk)")


def _inflated_size(fh, nbytes: int, budget: int, path: Path) -> int:
    """Bytes a zlib stream of ``nbytes`` inflates to, counted in chunks up to ``budget`` + 1."""
    inflate, total, left = zlib.decompressobj(), 0, nbytes
    try:
        while left and total <= budget:
            data = fh.read(min(left, 1 << 20))
            left -= len(data)
            while data and total <= budget:
                total += len(inflate.decompress(data, 1 << 20))  # 1 MiB at most at a time
                data = inflate.unconsumed_tail
    except zlib.error as exc:
        raise DeapFormatError(f"{path}: not a readable MATLAB file (truncated or corrupt?): zlib: {exc}") from None
    fh.seek(left, os.SEEK_CUR)
    return total


def _to_arrays(obj, path: Path, validate: bool) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise DeapFormatError(f"{path}: expected a dict with 'data' and 'labels', "
                              f"found {type(obj).__name__}")
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        found = ", ".join(safepickle.short_repr(k) for k in list(obj)[:10]) + (", ..." if len(obj) > 10 else "")
        raise DeapFormatError(f"{path}: missing key(s) {missing}; found [{found}]")
    data, labels = obj["data"], obj["labels"]
    for key, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise DeapFormatError(f"{path}: '{key}' must be a numeric numpy array, "
                                  f"found {type(arr).__name__}")
    if validate:
        validate_deap_arrays(data, labels, source=str(path))
    return {"data": data, "labels": labels}


def validate_deap_arrays(data: np.ndarray, labels: np.ndarray, *, source: str = "<arrays>",
                         n_trials: int | None = None, check_finite: bool = True) -> None:
    """Check one subject's arrays against the DEAP layout; raise :class:`DeapFormatError`.

    Parameters
    ----------
    data : ndarray, shape (n_trials, 40, 8064)
    labels : ndarray, shape (n_trials, 4), ratings in [1, 9]
    source : str
        Named in every error message (usually the file path).
    n_trials : int, optional
        Required number of trials. ``None`` accepts any number >= 2 (real DEAP has 40; the
        synthetic generator can write fewer for quick runs).
    check_finite : bool
        Also check that every sample of ``data`` is finite (one pass over the data).
    """
    if data.ndim != 3 or data.shape[1:] != (N_CHANNELS, N_SAMPLES):
        raise DeapFormatError(f"{source}: 'data' has shape {data.shape}, expected "
                              f"(n_trials, {N_CHANNELS}, {N_SAMPLES})")
    if n_trials is not None and data.shape[0] != n_trials:
        raise DeapFormatError(f"{source}: 'data' has {data.shape[0]} trials, expected {n_trials}")
    if data.shape[0] < 2:
        raise DeapFormatError(f"{source}: 'data' has {data.shape[0]} trial(s), need at least 2")
    if labels.shape != (data.shape[0], len(RATING_NAMES)):
        raise DeapFormatError(f"{source}: 'labels' has shape {labels.shape}, expected "
                              f"({data.shape[0]}, {len(RATING_NAMES)})")
    if not np.isfinite(labels).all():
        bad = np.argwhere(~np.isfinite(labels))[0]
        raise DeapFormatError(f"{source}: 'labels' holds a non-finite value "
                              f"(trial {bad[0]}, {RATING_NAMES[bad[1]]})")
    lo, hi = RATING_RANGE
    out = (labels < lo) | (labels > hi)
    if out.any():
        t, r = np.argwhere(out)[0]
        raise DeapFormatError(f"{source}: rating out of range [{lo:g}, {hi:g}]: "
                              f"{RATING_NAMES[r]} = {labels[t, r]:g} in trial {t}")
    if not check_finite:
        return
    # One summing pass finds any NaN or inf (they propagate into the sums) without a boolean
    # copy of the data; only then (or after an overflow of huge finite values) look closer.
    if np.isfinite(data.sum(axis=2)).all():
        return
    _check_finite(data, source)


def _check_finite(data: np.ndarray, source: str) -> None:
    """Raise :class:`DeapFormatError` naming the first trial and channel with a NaN or inf."""
    finite = np.isfinite(data).all(axis=2)  # (n_trials, n_channels)
    if not finite.all():
        t, c = np.argwhere(~finite)[0]
        raise DeapFormatError(f"{source}: 'data' holds NaN or infinite samples "
                              f"(trial {t}, channel {ALL_CHANNELS[c]})")


def _finite(x: np.ndarray) -> bool:
    """True when every value of ``x`` is finite: one min and one max pass, no temporary array."""
    return x.size == 0 or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def _check_float32(eeg: np.ndarray, eog: np.ndarray, source: str) -> None:
    """Raise naming the first trial and channel whose float32 copy overflowed to infinity."""
    for x, names in ((eeg, EEG_CHANNELS), (eog, EOG_CHANNELS)):
        finite = np.isfinite(x).all(axis=2)  # (n_trials, n_channels)
        if not finite.all():
            t, c = np.argwhere(~finite)[0]
            limit = float(np.finfo(np.float32).max)
            raise DeapFormatError(f"{source}: 'data' holds a value beyond float32's range (|x| > {limit:.3g}) "
                                  f"in trial {t}, channel {names[c]}: not a plausible sample")


def save_dat(path: str | os.PathLike, data: np.ndarray, labels: np.ndarray) -> Path:
    """Write one subject in DEAP's Python format, atomically (temporary file, then rename).

    Used by the synthetic generator; the result is read by :func:`load_dat` exactly like a
    genuine DEAP file.

    Parameters
    ----------
    path : path-like
        The ``sNN.dat`` file to write.
    data : ndarray, shape (n_trials, 40, 8064)
        Microvolts (EEG, EOG) and the peripheral channels' units, DEAP's channel order.
    labels : ndarray, shape (n_trials, 4)
        Valence, arousal, dominance, liking in [1, 9].

    Returns
    -------
    Path

    Raises
    ------
    DeapFormatError
        Arrays :func:`validate_deap_arrays` refuses (nothing is written).
    """
    path = Path(path)
    validate_deap_arrays(data, labels, source=str(path))
    with atomic_write(path) as fh:
        pickle.dump({"labels": np.ascontiguousarray(labels), "data": np.ascontiguousarray(data)}, fh, protocol=4)
    return path


# --- subjects -------------------------------------------------------------------------------

_SUBJECT_RE = re.compile(r"^s(\d+)\.(dat|mat)$")


def subject_id_from_path(path: str | os.PathLike) -> str:
    """``'s01'`` for ``.../s01.dat``; raise for names outside DEAP's ``sNN`` pattern."""
    name = Path(path).name
    m = _SUBJECT_RE.match(name)
    if not m:
        raise DeapFormatError(f"{path}: not a DEAP subject file name (expected sNN.dat or sNN.mat)")
    return f"s{int(m.group(1)):02d}"


def _subject_key(subject) -> str:
    """``3``, ``'3'``, ``'s3'`` and ``'s03'`` -> ``'s03'``; other names unchanged."""
    text = str(subject)
    m = re.match(r"^s?(\d+)$", text)
    return f"s{int(m.group(1)):02d}" if m else text


def _by_subject(found: list[Path]) -> dict[str, Path]:
    """Subject id -> file; two files of one subject (``s1.dat`` beside ``s01.dat``) are refused."""
    by_id: dict[str, Path] = {}
    for p in found:
        sid = subject_id_from_path(p)
        if sid in by_id:
            raise DeapFormatError(f"{p.parent}: {by_id[sid].name} and {p.name} are both subject {sid}: "
                                  "keep one of them")
        if not p.is_file():
            raise DeapFormatError(f"{p}: not a regular file (a folder or a device named like a subject file?)")
        by_id[sid] = p
    return by_id


def subject_files(data_dir: str | os.PathLike, subjects=None) -> list[Path]:
    """The subject files of a DEAP-format folder, in subject order.

    Parameters
    ----------
    data_dir : path-like
        A folder with ``sNN.dat`` files (preferred) or ``sNN.mat`` files. DEAP's own
        sub-folders ``data_preprocessed_python``/``data_preprocessed_matlab`` are looked
        into when ``data_dir`` is the DEAP root.
    subjects : iterable of int or str, optional
        Subset, e.g. ``[1, 2]`` or ``["s01", "s02"]``. Default: every subject found.

    Raises
    ------
    DeapFormatError
        No such folder or no subject file in it; a subject that is not there or named twice;
        two files of one subject (``s1.dat`` and ``s01.dat``); a folder named like a subject file.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DeapFormatError(f"{root}: data folder not found")
    for folder in (root, root / "data_preprocessed_python", root / "data_preprocessed_matlab"):
        if not folder.is_dir():
            continue
        for ext in ("dat", "mat"):
            found = sorted(p for p in folder.glob(f"s*.{ext}") if _SUBJECT_RE.match(p.name))
            if found:
                break
        if found:
            break
    else:
        raise DeapFormatError(f"{root}: no DEAP subject files (sNN.dat or sNN.mat) found")
    by_id = _by_subject(found)
    if subjects is None:
        return [by_id[k] for k in sorted(by_id)]
    wanted = [_subject_key(s) for s in subjects]
    if not wanted:
        raise DeapFormatError(f"{root}: the subject list is empty")
    twice = sorted(s for s, n in Counter(wanted).items() if n > 1)
    if twice:
        raise DeapFormatError(f"{root}: subject(s) {twice} named more than once")
    unknown = [s for s in wanted if s not in by_id]
    if unknown:
        raise DeapFormatError(f"{root}: subject(s) {unknown} not found; have {sorted(by_id)}")
    return [by_id[s] for s in wanted]


def load_subject(path: str | os.PathLike) -> Recording:
    """Read one DEAP-format subject file into a :class:`~kdlib.data.recording.Recording`.

    EEG (channels 1-32) and bipolar EOG (33-34) are kept as float32 microvolts with the
    3 s pre-trial baseline still in front of each trial; ratings keep all four scales.
    """
    path = Path(path)
    # map_dat: the file is mapped, not copied; channels 1-34 are read once, into float32, and
    # the check for NaN/inf (validate_deap_arrays) runs on those copies and on channels 35-40.
    arrays = load_mat(path, validate=False) if path.suffix == ".mat" else map_dat(path, validate=False)
    data, labels = arrays["data"], arrays["labels"]
    validate_deap_arrays(data, labels, source=str(path), check_finite=False)  # finiteness: below
    n_trials = data.shape[0]
    eeg_sl, eog_sl = slice(EEG_IDX[0], EEG_IDX[-1] + 1), slice(EOG_IDX[0], EOG_IDX[-1] + 1)  # slices: no float64 copy
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf: refused below
        eeg = np.ascontiguousarray(data[:, eeg_sl], dtype=np.float32)  # (n_trials, 32, n_samples)
        eog = np.ascontiguousarray(data[:, eog_sl], dtype=np.float32)  # (n_trials, 2, n_samples)
    rest = data[:, eog_sl.stop:]  # the peripheral channels: checked, never used
    if not all(_finite(x) for x in (eeg, eog, rest)):
        _check_finite(data, str(path))  # names trial and channel of a NaN or inf in the file
        _check_float32(eeg, eog, str(path))  # finite in the file, beyond float32's range
    return Recording(
        subject=subject_id_from_path(path),
        eeg=eeg,
        eog=eog,
        ratings=np.asarray(labels, dtype=np.float32),
        eeg_channels=EEG_CHANNELS,
        eog_channels=EOG_CHANNELS,
        fs=FS,
        trial_ids=np.arange(1, n_trials + 1),
        baseline_s=BASELINE_S,
        source=str(path),
    )
