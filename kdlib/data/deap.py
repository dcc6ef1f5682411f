"""DEAP file formats: the preprocessed Python (``sNN.dat``) and MATLAB (``sNN.mat``) releases.

Introduced in ``notebooks/01_data_preparation.ipynb``.

DEAP (Koelstra et al., 2012) is licensed per user: the kit never ships or downloads it. The
same functions read the synthetic DEAP-format set written by :mod:`kdlib.data.synthetic`.

Layout of one preprocessed subject file (a pickled ``dict``)::

    data    (40 trials, 40 channels, 8064 samples)   128 Hz, 3 s baseline + 60 s trial
    labels  (40 trials, 4)                             valence, arousal, dominance, liking in [1, 9]

The genuine files are Python-2 pickles; they are read with ``encoding="latin1"`` through a
restricted unpickler that only rebuilds numpy arrays: a ``.dat`` that asks for anything else
(``os.system``, ``builtins.eval``, ...) is refused before any of it runs.

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
from pathlib import Path

import numpy as np

from ..io import atomic_write
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

def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    """The only globals a DEAP pickle may name: numpy's array/dtype/scalar rebuilders.

    Both module spellings are accepted: ``numpy.core.*`` (files written by Python 2 or
    numpy 1) and ``numpy._core.*`` (numpy 2).
    """
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # multiarray._reconstruct
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # numeric._frombuffer (pickle protocol 5)
    scalar = np.float64(0).__reduce__()[0]  # multiarray.scalar
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray,
                                              ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's reconstruction functions (see module docstring)."""

    _allowed = _numpy_reconstructors()

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DeapFormatError(
                f"{self._source}: refused to load: the pickle references {module}.{name}, "
                "but a DEAP file may only contain numpy arrays (nothing was executed)"
            ) from None

    def persistent_load(self, pid):
        raise DeapFormatError(f"{self._source}: refused to load: persistent ids are not allowed")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DeapFormatError(f"{path}: file not found")
    if not path.is_file():
        raise DeapFormatError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DeapFormatError(f"{path}: file is empty")


def load_dat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Load one preprocessed DEAP Python file (``sNN.dat``) safely.

    Parameters
    ----------
    path : path-like
        A genuine DEAP Python-2 pickle, or one written from Python 3 (e.g. by :func:`save_dat`).
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
        reconstruction; missing keys; invalid arrays. The message names the file.
    """
    path = Path(path)
    _require_file(path)
    with open(path, "rb", buffering=1 << 20) as fh:
        try:
            obj = _NumpyOnlyUnpickler(fh, str(path)).load()
        except DeapFormatError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError) as exc:
            raise DeapFormatError(
                f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                f"{type(exc).__name__}: {exc}"
            ) from None
    return _to_arrays(obj, path, validate)


_LARGE = 1 << 16  #: a byte string at least this long (outside a pickle frame) is mapped, not read


class _Span:
    """Where a large byte string lies in the file (``offset``, ``length``): read later, by mapping."""

    __slots__ = ("offset", "length")

    def __init__(self, offset: int, length: int):
        self.offset, self.length = offset, length


class _ArraySpec:
    """Stands in for an ndarray whose bytes are a :class:`_Span` (set by the pickle's BUILD)."""

    def __init__(self, shape=(0,), dtype=np.uint8, fortran=False, raw=None):
        self.shape, self.dtype, self.fortran, self.raw = tuple(shape), np.dtype(dtype), bool(fortran), raw

    def __setstate__(self, state):  # ndarray.__setstate__'s layouts: (version, shape, dtype, fortran, raw) or without version
        if len(state) == 5:
            state = state[1:]
        self.shape, self.dtype, self.fortran, self.raw = tuple(state[0]), state[1], bool(state[2]), state[3]


def _lazy_reconstruct(cls, shape, typecode):
    """numpy's ``multiarray._reconstruct``, deferred: the state is applied by :class:`_ArraySpec`."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"only numpy.ndarray may be rebuilt, not {cls!r}")
    return _ArraySpec()


def _lazy_frombuffer(buf, dtype, shape, order):
    """numpy's ``numeric._frombuffer`` (pickle protocol 5), deferred like :func:`_lazy_reconstruct`."""
    return _ArraySpec(shape, dtype, order == "F", buf)


class _MappingUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be overridden
    """The same allow-list as :class:`_NumpyOnlyUnpickler`, but large byte strings are skipped
    and recorded as :class:`_Span` s, and arrays as :class:`_ArraySpec` s (see :func:`map_dat`)."""

    _allowed = {**_NumpyOnlyUnpickler._allowed,
                **{(f"{core}.multiarray", "_reconstruct"): _lazy_reconstruct for core in ("numpy.core", "numpy._core")},
                **{(f"{core}.numeric", "_frombuffer"): _lazy_frombuffer for core in ("numpy.core", "numpy._core")}}
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self._fh, self._source = file, source

    find_class = _NumpyOnlyUnpickler.find_class
    persistent_load = _NumpyOnlyUnpickler.persistent_load

    def _bytes(self, n: int, decode=None):
        frame = self._unframer.current_frame  # protocol 4 writes large strings between frames
        if n < _LARGE or (frame is not None and frame.tell() < len(frame.getbuffer())):
            data = self.read(n)
            if len(data) != n:
                raise EOFError("pickle data was truncated")
            self.append(decode(data) if decode else data)
            return
        offset = self._fh.tell()
        self._fh.seek(n, os.SEEK_CUR)
        self.append(_Span(offset, n))

    def _load_sized(fmt, decode=None):  # noqa: N805 -- builds the opcode handlers below
        size = struct.calcsize(fmt)

        def load(self):
            (n,) = struct.unpack(fmt, self.read(size))
            if n < 0:
                raise pickle.UnpicklingError("negative byte count")
            self._bytes(n, decode(self) if decode else None)
        return load

    dispatch[pickle.BINBYTES[0]] = _load_sized("<I")
    dispatch[pickle.BINBYTES8[0]] = _load_sized("<Q")
    dispatch[pickle.BYTEARRAY8[0]] = _load_sized("<Q")
    dispatch[pickle.BINSTRING[0]] = _load_sized("<i", lambda self: self._decode_string)  # Python-2 str
    del _load_sized


def _map_array(spec, mm: mmap.mmap | None, size: int, path: Path):
    """An :class:`_ArraySpec` -> ndarray: a read-only view of the mapped file, or a small copy."""
    if not isinstance(spec, _ArraySpec):
        return spec
    if not isinstance(spec.dtype, np.dtype) or spec.dtype.hasobject:
        raise DeapFormatError(f"{path}: refused to load: an array of {spec.dtype!r}")
    raw, order = spec.raw, "F" if spec.fortran else "C"
    n_bytes = int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.itemsize
    if isinstance(raw, _Span):
        if raw.offset + raw.length > size:
            raise DeapFormatError(f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                                  f"an array ends at byte {raw.offset + raw.length} of {size}")
        if raw.length != n_bytes:
            raise DeapFormatError(f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                                  f"{raw.length} bytes for an array of shape {spec.shape}")
        return np.ndarray(spec.shape, spec.dtype, buffer=mm, offset=raw.offset, order=order)
    if isinstance(raw, str):  # a Python-2 str, decoded as latin-1 (what numpy itself does)
        raw = raw.encode("latin1")
    if len(raw) != n_bytes:
        raise DeapFormatError(f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                              f"{len(raw)} bytes for an array of shape {spec.shape}")
    return np.frombuffer(bytes(raw), spec.dtype).reshape(spec.shape, order=order).copy(order=order)


def map_dat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Open one preprocessed DEAP Python file like :func:`load_dat`, without reading its arrays.

    The pickle is walked with the same allow-list as :func:`load_dat` (nothing but numpy's
    array rebuilders may be named), but every large array is returned as a **read-only view
    of the memory-mapped file**: its bytes are read from the OS page cache only when (and
    where) they are used. Preparing windows touches 34 of the 40 channels once, instead of
    copying all of them into memory first.

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
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            obj = _MappingUnpickler(fh, str(path)).load()
        except DeapFormatError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError, struct.error) as exc:
            raise DeapFormatError(
                f"{path}: not a readable DEAP pickle (truncated or corrupt?): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        spans = isinstance(obj, dict) and any(isinstance(v, _ArraySpec) and isinstance(v.raw, _Span)
                                             for v in obj.values())
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if spans else None
    if mm is not None and hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    if isinstance(obj, dict):
        obj = {k: _map_array(v, mm, size, path) for k, v in obj.items()}
    return _to_arrays(obj, path, validate)


def load_mat(path: str | os.PathLike, *, validate: bool = True) -> dict[str, np.ndarray]:
    """Load one preprocessed DEAP MATLAB file (``sNN.mat``) with :func:`scipy.io.loadmat`.

    Same return value and errors as :func:`load_dat`.
    """
    from scipy.io import loadmat

    path = Path(path)
    _require_file(path)
    try:
        obj = loadmat(path, variable_names=["data", "labels"])
    except Exception as exc:  # scipy raises many types for corrupt files
        raise DeapFormatError(
            f"{path}: not a readable MATLAB file (truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return _to_arrays(obj, path, validate)


def _to_arrays(obj, path: Path, validate: bool) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise DeapFormatError(f"{path}: expected a dict with 'data' and 'labels', "
                              f"found {type(obj).__name__}")
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        raise DeapFormatError(f"{path}: missing key(s) {missing}; found {sorted(map(str, obj))}")
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


def save_dat(path: str | os.PathLike, data: np.ndarray, labels: np.ndarray) -> Path:
    """Write one subject in DEAP's Python format, atomically (temporary file, then rename).

    Used by the synthetic generator; the result is read by :func:`load_dat` exactly like a
    genuine DEAP file.
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
    by_id = {subject_id_from_path(p): p for p in found}
    if subjects is None:
        return [by_id[k] for k in sorted(by_id)]
    wanted = [s if isinstance(s, str) else f"s{int(s):02d}" for s in subjects]
    unknown = [s for s in wanted if s not in by_id]
    if unknown:
        raise DeapFormatError(f"{root}: subject(s) {unknown} not found; have {sorted(by_id)}")
    if not wanted:
        raise DeapFormatError(f"{root}: the subject list is empty")
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
    eeg = np.ascontiguousarray(data[:, eeg_sl], dtype=np.float32)  # (n_trials, 32, n_samples)
    eog = np.ascontiguousarray(data[:, eog_sl], dtype=np.float32)  # (n_trials, 2, n_samples)
    sums = [x.sum(axis=2) for x in (eeg, eog, data[:, eog_sl.stop:])]  # NaN/inf propagate into the sums
    if not all(np.isfinite(s).all() for s in sums):
        _check_finite(data, str(path))  # names trial and channel (a float32 overflow alone passes)
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
