"""A disk cache of prepared windows, keyed by the configuration and the source files.

Introduced in ``notebooks/01_data_preparation.ipynb``.

One cache entry per subject: a folder ``<cache_dir>/<subject>-<key>/`` holding ``eeg.npy`` and
``eog.npy`` (the windows, float32) and ``meta.npz`` (ratings, ids, channel names, label rule),
where ``key`` hashes the :class:`~kdlib.data.windows.PrepConfig`, the cache format version, a fingerprint
of every source file of the subject (name, size, modification time and its first and last
64 KiB) and, for the bring-your-own-data path, a text describing everything else that shapes
the result (the manifest's preprocessing, channel map and trial rows: see
:mod:`kdlib.data.custom`). A changed file or setting gives a new key, so a stale entry is
never read. An entry is written into a hidden temporary folder that is then renamed: an
interrupted run leaves either a whole entry or none, and a second run reads what the first one
finished.

Reading an entry memory-maps its windows (``numpy.load(..., mmap_mode="c")``): opening costs
next to nothing, the pages come from the operating system's file cache when they are touched,
and the arrays are writable copy-on-write views, so changing them never changes the entry.
Plain ``.npy`` files rather than one ``.npz``: writing a zip member computes a CRC over the data
and an ``.npz`` member cannot be memory-mapped by numpy (``benchmarks/results/bench_data.md``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from dataclasses import replace

from tqdm.auto import tqdm

from .. import paths
from ..io import atomic_dir, remove_stale_temporaries
from . import deap
from .recording import Recording
from .windows import DEFAULT, PrepConfig, WindowSet, concat_windows, make_windows

__all__ = ["CACHE_VERSION", "file_fingerprint", "source_fingerprint", "dataset_fingerprints", "cache_key",
           "cached_windows", "prepare_subject",
           "prepare_dataset", "build_cache", "load_entry", "save_entry", "list_entries", "clean_temporaries"]

CACHE_VERSION = 2  # bump when the preparation code changes what it produces
_EDGE = 64 * 1024


def file_fingerprint(path: str | os.PathLike) -> str:
    """Cheap content fingerprint: name, size, mtime and a hash of the first and last 64 KiB.

    Hashing whole 100 MB DEAP files would cost as much as reading them; the edges change
    whenever the arrays or the pickle layout change, and size/mtime catch the rest.
    """
    path = Path(path)
    st = path.stat()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{path.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE))
        if st.st_size > _EDGE:
            fh.seek(max(_EDGE, st.st_size - _EDGE))
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def cache_key(source: str | os.PathLike | Sequence[str | os.PathLike], config: PrepConfig,
              *, extra: str = "") -> str:
    """The cache key of one subject under one preparation config (16 hex digits).

    Parameters
    ----------
    source : path-like or sequence of path-like
        The subject's source file (DEAP: one ``sNN.dat``), or all of them, in a fixed order.
    config : PrepConfig
    extra : str
        Anything else the result depends on (e.g. a manifest's preprocessing), as text.
        Empty for DEAP files, whose keys are unchanged by this argument.
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise ValueError("cache_key: no source file")
    fingerprints = "|".join(file_fingerprint(p) for p in sources)
    h = hashlib.blake2b(digest_size=8)
    h.update(f"v{CACHE_VERSION}|{config.to_json()}|{fingerprints}".encode())
    if extra:
        h.update(f"|{extra}".encode())
    return h.hexdigest()


def source_fingerprint(sources: Sequence[str | os.PathLike], extra: str = "") -> str:
    """One subject's data as one fingerprint.

    Parameters
    ----------
    sources : sequence of path-like
        Every source file of the subject, in a fixed order (each through :func:`file_fingerprint`).
    extra : str
        What else shapes the data, as for :func:`cache_key`.

    Returns
    -------
    str
        32 hex digits.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update("|".join(file_fingerprint(p) for p in sources).encode())
    if extra:
        h.update(f"|{extra}".encode())
    return h.hexdigest()


def content_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Fingerprint of a file's name, size and *whole content* (blake2b), not of its dates.

    What a run folder records (:func:`dataset_fingerprints`): a file rewritten with the same bytes
    (``make`` regenerating the synthetic set) is the same data, a file changed anywhere is not.
    Reading every byte costs about a second per GB, once per run start.

    Parameters
    ----------
    path : path-like
    chunk : int
        Bytes read at a time (memory stays bounded).

    Returns
    -------
    str
        32 hex digits.
    """
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{path.name}|{path.stat().st_size}|".encode())
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_fingerprints(data_dir: str | os.PathLike, subjects=None) -> dict[str, str]:
    """The fingerprint of every (or every chosen) subject of a DEAP-format folder.

    What a run folder records of its data (:meth:`kdlib.evaluate.DataSpec.fingerprint`): a file
    whose content changed since (even with the same name) or a subject added or removed shows as
    a change; a file rewritten with identical bytes does not (:func:`content_fingerprint`).

    Parameters
    ----------
    data_dir : path-like
    subjects : iterable of int or str, optional
        As for :func:`kdlib.data.deap.subject_files`.

    Returns
    -------
    dict
        ``{subject id: source_fingerprint}``, in subject order.
    """
    return {deap.subject_id_from_path(p): content_fingerprint(p) for p in deap.subject_files(data_dir, subjects)}


_META = ("ratings", "subject", "trial", "start_s", "fs", "eeg_channels", "eog_channels", "threshold", "rule",
         "rating_names")


def save_entry(path: Path, ws: WindowSet) -> Path:
    """Write one subject's windows as the entry folder ``path``, atomically.

    The files go into a hidden temporary folder beside ``path``, renamed onto ``path`` once
    complete (:func:`kdlib.io.atomic_dir`); on any exception ``path`` is untouched. If another
    process finished the same entry first, its entry is kept (same key, same data).

    Parameters
    ----------
    path : Path
        The entry folder, named by the cache key.
    ws : WindowSet
        One subject's windows.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_dir(path) as tmp:
        np.save(tmp / "eeg.npy", ws.eeg)  # (N, n_eeg, T) float32
        np.save(tmp / "eog.npy", ws.eog)  # (N, n_eog, T) float32
        np.savez(tmp / "meta.npz", ratings=ws.ratings, subject=ws.subject, trial=ws.trial, start_s=ws.start_s,
                 fs=np.float64(ws.fs), eeg_channels=np.array(ws.eeg_channels),
                 eog_channels=np.array(ws.eog_channels), threshold=np.float64(ws.threshold),
                 rule=np.array(ws.rule), rating_names=np.array(ws.rating_names))
    return path


def load_entry(path: Path) -> WindowSet:
    """Open a cache entry (windows memory-mapped); raise ``ValueError`` naming it if unreadable."""
    path = Path(path)
    try:
        with np.load(path / "meta.npz", allow_pickle=False) as npz:
            z = {name: npz[name] for name in _META}
        eeg = np.asarray(np.load(path / "eeg.npy", mmap_mode="c", allow_pickle=False))  # (N, n_eeg, T)
        eog = np.asarray(np.load(path / "eog.npy", mmap_mode="c", allow_pickle=False))  # (N, n_eog, T)
        if eeg.ndim != 3 or eog.ndim != 3 or eeg.dtype != np.float32 or eog.dtype != np.float32:
            raise ValueError(f"windows of shape {eeg.shape}/{eog.shape} and type {eeg.dtype}/{eog.dtype}")
        return WindowSet(
            eeg=eeg, eog=eog, ratings=z["ratings"], subject=z["subject"], trial=z["trial"],
            start_s=z["start_s"], fs=float(z["fs"]), eeg_channels=tuple(z["eeg_channels"].tolist()),
            eog_channels=tuple(z["eog_channels"].tolist()), threshold=float(z["threshold"]),
            rule=str(z["rule"]), rating_names=tuple(z["rating_names"].tolist()))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: unreadable cache entry ({type(exc).__name__}: {exc})") from None


def list_entries(cache_dir: str | os.PathLike, subject: str = "*") -> list[Path]:
    """The complete entries in ``cache_dir`` (of one ``subject``, or all), sorted by name.

    Parameters
    ----------
    cache_dir : path-like
    subject : str
        A subject id, or ``"*"`` for every subject.

    Returns
    -------
    list of Path
    """
    return sorted(p for p in Path(cache_dir).glob(f"{subject}-*") if p.is_dir())


def cached_windows(subject: str, sources: Sequence[str | os.PathLike], config: PrepConfig,
                   load_recording: Callable[[], Recording], cache_dir: str | os.PathLike | None = None,
                   use_cache: bool = True, extra: str = "") -> WindowSet:
    """Windows of one subject from any loader, through the cache.

    Parameters
    ----------
    subject : str
        Subject id; the entry is ``<cache_dir>/<subject>-<key>/``.
    sources : sequence of path-like
        Every file the subject's :class:`Recording` is read from (fingerprinted for the key).
    config : PrepConfig
    load_recording : callable
        Called without arguments, only when no valid entry exists; returns the Recording.
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`.
    use_cache : bool
        False recomputes and writes nothing.
    extra : str
        Further text for the key (see :func:`cache_key`).

    Notes
    -----
    A corrupt cache entry is replaced (it is derived data); source files are never modified.
    """
    if not use_cache:
        return _checked_windows(load_recording(), config)
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    entry = cache_dir / f"{subject}-{cache_key(list(sources), config, extra=extra)}"
    if entry.exists():
        try:
            return load_entry(entry)
        except ValueError:
            _remove(entry)  # rebuilt below
    ws = _checked_windows(load_recording(), config)
    save_entry(entry, ws)
    return ws


def _checked_windows(rec: Recording, config: PrepConfig) -> WindowSet:
    """:func:`make_windows`, refusing settings the recording's rate cannot honour and
    windows that are not all finite (e.g. samples beyond float32's range); ValueError naming
    the source."""
    source, fs = rec.source or rec.subject, rec.fs
    for name in ("window_s", "stride_s"):
        if round(getattr(config, name) * fs) < 1:
            raise ValueError(f"{source}: {name} = {getattr(config, name):g} s is shorter than one sample "
                             f"at {fs:g} Hz")
    if config.eog_band is not None and config.eog_band[1] >= fs / 2:
        raise ValueError(f"{source}: eog_band {config.eog_band} Hz needs a sampling rate above "
                         f"{2 * config.eog_band[1]:g} Hz, the data have {fs:g} Hz")
    ws = make_windows(rec, config)
    for name in ("eeg", "eog"):
        x = getattr(ws, name)
        if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
            raise ValueError(f"{source}: the prepared {name.upper()} windows hold NaN or infinite values "
                             "(samples too large for float32, or a filter that diverged)")
    return ws


def clean_temporaries(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove the half-written entries that killed writers left in the cache folder.

    :func:`prepare_dataset`, :func:`build_cache` and :func:`~kdlib.data.custom.prepare_custom`
    call it when they start (see :func:`kdlib.io.remove_stale_temporaries`).

    Parameters
    ----------
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`.

    Returns
    -------
    list of pathlib.Path
        The temporaries removed.
    """
    return remove_stale_temporaries(Path(cache_dir) if cache_dir is not None else paths.cache_dir())


def _remove(entry: Path) -> None:
    """Delete a corrupt entry (a folder, or a file left by an older kdlib under the same name)."""
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def prepare_subject(source: str | os.PathLike, config: PrepConfig = DEFAULT,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> WindowSet:
    """Windows of one DEAP-format subject file, from the cache when an entry exists.

    A corrupt cache entry is replaced (it is derived data); the source file is never modified.

    Parameters
    ----------
    source : path-like
        A subject's ``sNN.dat`` or ``sNN.mat`` file.
    config : PrepConfig
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`.
    use_cache : bool
        Read and write the cache; False recomputes and writes nothing.

    Returns
    -------
    WindowSet
    """
    source = Path(source)
    return cached_windows(deap.subject_id_from_path(source), [source], config,
                          lambda: deap.load_subject(source), cache_dir, use_cache)


def prepare_dataset(data_dir: str | os.PathLike, config: PrepConfig = DEFAULT, subjects=None,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                    progress: bool = True, jobs: int = 1) -> WindowSet:
    """Windows of every (or the chosen) subject of a DEAP-format folder, with a progress bar.

    Parameters
    ----------
    data_dir : path-like
        Folder of ``sNN.dat`` (or ``sNN.mat``) files: the synthetic set or a real DEAP copy.
    config : PrepConfig
    subjects : iterable of int or str, optional
        Subset of subjects, e.g. ``[1, 2]`` or ``["s01"]``.
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`.
    use_cache : bool
        False recomputes everything and writes nothing.
    progress : bool
        Show a tqdm bar over subjects.
    jobs : int
        Subjects prepared at once, in threads (see :func:`build_cache`). The result does not
        depend on it.

    Returns
    -------
    WindowSet
        All subjects' windows, in subject order.
    """
    files = deap.subject_files(data_dir, subjects)
    if use_cache:
        clean_temporaries(cache_dir)
    return _concat_releasing(list(_each_subject(files, config, cache_dir, use_cache, progress, jobs)))


def build_cache(data_dir: str | os.PathLike, config: PrepConfig = DEFAULT, subjects=None,
                cache_dir: str | os.PathLike | None = None, progress: bool = True, jobs: int = 1) -> int:
    """Write the cache entry of every (or the chosen) subject, keeping nothing in memory.

    The way to prepare a whole data set once, before training reads it subject by subject
    (:func:`prepare_subject` then opens each entry memory-mapped): peak memory stays that of
    ``jobs`` subjects.

    Parameters
    ----------
    data_dir, config, subjects, cache_dir, progress
        As for :func:`prepare_dataset`.
    jobs : int
        Subjects prepared at once, in threads: numpy, scipy's filters and file writes release
        the GIL, so 2 threads on 2 free cores take about half the time of one
        (``benchmarks/results/bench_data.md``).

    Returns
    -------
    int
        The number of windows in the cache for these subjects.
    """
    files = deap.subject_files(data_dir, subjects)
    clean_temporaries(cache_dir)
    return sum(len(ws) for ws in _each_subject(files, config, cache_dir, True, progress, jobs))


def _each_subject(files: list[Path], config: PrepConfig, cache_dir, use_cache: bool, progress: bool,
                  jobs: int):
    """``prepare_subject`` of every file, in file order, ``jobs`` at a time in threads, with a bar.

    Yields the WindowSets one by one (a caller that drops each keeps one subject in memory)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    prepare = lambda f: prepare_subject(f, config, cache_dir, use_cache)  # noqa: E731
    bar = dict(total=len(files), desc="prepare", unit="subject", disable=not progress)
    if jobs <= 1:
        yield from tqdm(map(prepare, files), **bar)
        return
    with ThreadPoolExecutor(jobs) as pool:
        yield from tqdm(pool.map(prepare, files), **bar)  # in file order


def _concat_releasing(parts: list[WindowSet]) -> WindowSet:
    """:func:`concat_windows` of ``parts``, emptying the list as it copies, so that each part's
    memory is released once copied: the peak is about one copy of the
    data set, not two."""
    if len(parts) <= 1:
        return concat_windows(parts)
    head = concat_windows([p.subset(np.arange(0)) for p in parts])  # checks the layouts; no data
    n = sum(len(p) for p in parts)
    eeg = np.empty((n, *parts[0].eeg.shape[1:]), np.result_type(*[p.eeg.dtype for p in parts]))  # (N, n_eeg, T)
    eog = np.empty((n, *parts[0].eog.shape[1:]), np.result_type(*[p.eog.dtype for p in parts]))  # (N, n_eog, T)
    small = {name: [] for name in ("ratings", "subject", "trial", "start_s")}
    row = 0
    parts.reverse()
    while parts:
        p = parts.pop()
        eeg[row:row + len(p)], eog[row:row + len(p)] = p.eeg, p.eog
        for name, got in small.items():
            got.append(getattr(p, name))
        row += len(p)
        del p
    width = max(s.dtype.itemsize // 4 for s in small["subject"])
    return replace(head, eeg=eeg, eog=eog, ratings=np.concatenate(small["ratings"]),
                   subject=np.concatenate(small["subject"]).astype(f"<U{width}"),
                   trial=np.concatenate(small["trial"]), start_s=np.concatenate(small["start_s"]))
