"""The manifest of a custom data set, parsed: :func:`load_manifest` and the trials table, :func:`read_trials`.

Part of :mod:`kdlib.data.custom` (introduced in ``notebooks/06_bring_your_own_data.ipynb``).
Parsing checks the manifest's structure and values only (every structural problem at once);
:mod:`~kdlib.data.custom.validation` checks the files it names.

A manifest (YAML; TOML has the same keys, ``[[recordings]]`` for the list)::

    name: my-lab-study                 # optional, shown in summaries
    trials: trials.csv                 # the trials table (paths are relative to this file)
    recordings:                        # one or more per subject, any format MNE reads
      - {subject: p01, id: run1, file: raw/p01_run1.bdf}
      - {subject: p01, id: run2, file: raw/p01_run2.bdf}
      - {subject: p02, id: run1, file: raw/p02.vhdr}
    channels:
      eeg: [Fp1, Fp2, F3, F4, C3, C4, O1, O2]    # kept in this order
      eog:
        hEOG: [LO1, LO2]               # bipolar: LO1 - LO2 (left minus right canthus)
        vEOG: [VEOGU, VEOGL]           # bipolar: above minus below the eye
        # EOG3: EOG3                   # or a ready-made (already bipolar) channel
      rename: {"EEG 000": Fpz}         # optional: file name -> name used above
    preprocessing:
      fs: 128                          # common sampling rate, Hz (MNE resamples every file)
      eeg_band: [4, 45]                # EEG band-pass, Hz; null keeps the EEG as recorded
      eeg_reference: average           # 'average', a list of electrodes (e.g. [M1, M2]), or null
      trial_duration_s: null           # cut every trial to this length (trials of unequal length)
    ratings: {min: 1, max: 9}          # the rating scale

The trials table (CSV), one row a trial:

==================  ========  ==============================================================
column              required  meaning
==================  ========  ==============================================================
subject             yes       subject id (letters, digits, ``_ . -``)
recording           yes       the ``id`` of one of the subject's recordings
trial               yes       trial id (integer, unique within the subject; DEAP: video number)
onset_s             yes       trial start, s from the start of the recording
duration_s          yes       trial length, s (equal within a subject, or set trial_duration_s)
valence, arousal    yes       ratings on the manifest's scale
dominance, liking   no        ratings; left empty (NaN) in the Recording when absent
baseline_s          no        length of the pre-trial baseline, s (default 0: none)
baseline_onset_s    no        its start, s (default ``onset_s - baseline_s``: right before)
==================  ========  ==============================================================
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..recording import RATING_NAMES
from .document import _read_document
from .problems import ManifestError, Problem, _Collector, _repeated, _short

__all__ = ["FS_RANGE", "RecordingFile", "EogDerivation", "ChannelMap", "Preprocessing", "Manifest",
           "load_manifest", "read_trials"]

_REQUIRED_COLUMNS = ("subject", "recording", "trial", "onset_s", "duration_s", "valence", "arousal")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")  # subject ids become cache file names
_SIDECARS = (".fdt", ".eeg", ".vmrk", ".dat")  # data files beside .set / .vhdr headers
FS_RANGE = (32.0, 100_000.0)  #: allowed common sampling rates, Hz (the EOG band-pass reaches 15 Hz)


# --- manifest dataclasses ---------------------------------------------------------------------

@dataclass(frozen=True)
class RecordingFile:
    """One recording file of one subject; ``recording`` is the id the trials table uses."""

    subject: str
    recording: str
    path: Path


@dataclass(frozen=True)
class EogDerivation:
    """An EOG channel of the Recording: ``anode - cathode``, or ``anode`` as it is (ready-made
    bipolar channel) when ``cathode`` is None."""

    name: str
    anode: str
    cathode: str | None = None

    @property
    def electrodes(self) -> tuple[str, ...]:
        return (self.anode,) if self.cathode is None else (self.anode, self.cathode)


@dataclass(frozen=True)
class ChannelMap:
    """Which channels are EEG (in this order) and how the EOG channels are formed.

    ``rename`` maps names in the files to the names used here, applied first.
    """

    eeg: tuple[str, ...]
    eog: tuple[EogDerivation, ...]
    rename: tuple[tuple[str, str], ...] = ()

    @property
    def eog_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.eog)

    @property
    def eog_electrodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for d in self.eog for e in d.electrodes))


@dataclass(frozen=True)
class Preprocessing:
    """What is done to every recording before the trials are cut (see the module docstring)."""

    fs: float = 128.0  # common sampling rate, Hz
    eeg_band: tuple[float, float] | None = None  # EEG band-pass, Hz (None: as recorded)
    eeg_reference: str | tuple[str, ...] | None = None  # 'average', electrodes, or None
    trial_duration_s: float | None = None  # cut every trial to this length, s

    @property
    def reference_channels(self) -> tuple[str, ...]:
        """Electrodes named as the reference (empty for 'average' or None)."""
        return self.eeg_reference if isinstance(self.eeg_reference, tuple) else ()


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest (:func:`load_manifest`); every path is absolute."""

    path: Path
    trials: Path
    recordings: tuple[RecordingFile, ...]
    channels: ChannelMap
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    rating_range: tuple[float, float] = (1.0, 9.0)
    name: str = ""

    @property
    def subjects(self) -> tuple[str, ...]:
        """Subject ids in the order of their first recording."""
        return tuple(dict.fromkeys(r.subject for r in self.recordings))

    def recordings_of(self, subject: str) -> tuple[RecordingFile, ...]:
        return tuple(r for r in self.recordings if r.subject == subject)

    def describe(self) -> str:
        """The settings that shape the prepared data, as canonical JSON (part of the cache key)."""
        ch = self.channels
        return json.dumps({"eeg": ch.eeg, "eog": [asdict(d) for d in ch.eog], "rename": ch.rename,
                           "preprocessing": asdict(self.preprocessing), "ratings": self.rating_range},
                          sort_keys=True)


# --- parsing the manifest ---------------------------------------------------------------------

def _str_list(value, key: str, out: _Collector) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        out.add(f"'{key}' must be a non-empty list of channel names, got {_short(value)}")
        return ()
    names = tuple(str(v) for v in value)
    repeated = _repeated(names)
    if repeated:
        out.add(f"'{key}' names channel(s) {repeated} more than once")
    return names


def _parse_eog(value, out: _Collector) -> tuple[EogDerivation, ...]:
    if not isinstance(value, dict) or not value:
        out.add("'channels.eog' must map each EOG channel name to an electrode "
                "(ready-made bipolar) or to [anode, cathode], e.g. {hEOG: [LO1, LO2]}")
        return ()
    derivations = []
    for name, spec in value.items():
        if isinstance(spec, (str, int)):
            derivations.append(EogDerivation(str(name), str(spec)))
        elif isinstance(spec, list) and len(spec) == 2 and all(isinstance(e, (str, int)) for e in spec):
            derivations.append(EogDerivation(str(name), str(spec[0]), str(spec[1])))
        else:
            out.add(f"'channels.eog.{name}' must be a channel name or [anode, cathode], got {_short(spec)}")
    return tuple(derivations)


def _parse_channels(value, out: _Collector) -> ChannelMap:
    if not isinstance(value, dict):
        out.add("'channels' must be a mapping with 'eeg' and 'eog'")
        return ChannelMap((), ())
    _unknown_keys(value, {"eeg", "eog", "rename"}, "channels", out)
    eeg = _str_list(value.get("eeg"), "channels.eeg", out)
    eog = _parse_eog(value.get("eog"), out)
    clash = sorted(set(eeg) & {d.name for d in eog})
    if clash:
        out.add(f"EOG channel name(s) {clash} are also EEG channels: give the EOG another name")
    rename = value.get("rename") or {}
    if not isinstance(rename, dict):
        out.add(f"'channels.rename' must map names in the files to new names, got {_short(rename)}")
        rename = {}
    return ChannelMap(eeg, eog, tuple((str(k), str(v)) for k, v in rename.items()))


def _number(value, key: str, out: _Collector, positive: bool = True) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        out.add(f"'{key}' must be a {'positive ' if positive else ''}number, got {_short(value)}")
        return None
    return float(value)


def _parse_preprocessing(value, out: _Collector) -> Preprocessing:
    if value is None:
        return Preprocessing()
    if not isinstance(value, dict):
        out.add("'preprocessing' must be a mapping")
        return Preprocessing()
    _unknown_keys(value, {"fs", "eeg_band", "eeg_reference", "trial_duration_s"}, "preprocessing", out)
    fs = _number(value.get("fs", 128.0), "preprocessing.fs", out) or 128.0
    if not FS_RANGE[0] <= fs <= FS_RANGE[1]:
        out.add(f"'preprocessing.fs' must be between {FS_RANGE[0]:g} and {FS_RANGE[1]:g} Hz, got {fs:g}")
        fs = 128.0
    band = value.get("eeg_band")
    if band is not None:
        ok = isinstance(band, list) and len(band) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in band)
        if not ok or not 0 < band[0] < band[1] < fs / 2:
            out.add(f"'preprocessing.eeg_band' must be [low, high] Hz with 0 < low < high < fs/2 "
                    f"= {fs / 2:g}, got {_short(band)}")
            band = None
        else:
            band = (float(band[0]), float(band[1]))
    ref = value.get("eeg_reference")
    if isinstance(ref, list):
        ref = _str_list(ref, "preprocessing.eeg_reference", out)
    elif ref is not None and ref != "average":
        out.add(f"'preprocessing.eeg_reference' must be 'average', a list of electrodes or null, got {_short(ref)}")
        ref = None
    crop = value.get("trial_duration_s")
    if crop is not None:
        crop = _number(crop, "preprocessing.trial_duration_s", out)
    return Preprocessing(fs=fs, eeg_band=band, eeg_reference=ref, trial_duration_s=crop)


def _parse_ratings(value, out: _Collector) -> tuple[float, float]:
    if value is None:
        return (1.0, 9.0)
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        out.add(f"'ratings' must be {{min: ..., max: ...}}, got {_short(value)}")
        return (1.0, 9.0)
    lo = _number(value["min"], "ratings.min", out, positive=False)
    hi = _number(value["max"], "ratings.max", out, positive=False)
    if lo is None or hi is None:
        return (1.0, 9.0)
    if not lo < hi:
        out.add(f"'ratings' needs min < max, got {lo:g} and {hi:g}")
    return (lo, hi)


def _parse_recordings(value, folder: Path, out: _Collector) -> tuple[RecordingFile, ...]:
    if not isinstance(value, list) or not value:
        out.add("'recordings' must be a non-empty list of {subject, id, file}")
        return ()
    found, seen = [], set()
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not {"subject", "file"} <= set(entry):
            out.add(f"'recordings[{i}]' must have 'subject' and 'file' (and optionally 'id'), got {_short(entry)}")
            continue
        _unknown_keys(entry, {"subject", "id", "file"}, f"recordings[{i}]", out)
        if not isinstance(entry["file"], str) or not entry["file"].strip() or "\0" in entry["file"]:
            out.add(f"'recordings[{i}].file' must name a file (a path relative to the manifest), "
                    f"got {_short(entry['file'])}")
            continue
        subject, path = str(entry["subject"]), folder / str(entry["file"])
        recording = str(entry.get("id", Path(str(entry["file"])).stem))
        if not _SAFE_ID.match(subject):
            out.add(f"'recordings[{i}]': subject id {subject!r} may only hold letters, digits and _ . -")
        if (subject, recording) in seen:
            out.add(f"'recordings[{i}]': subject {subject!r} has two recordings with id {recording!r}")
        seen.add((subject, recording))
        found.append(RecordingFile(subject, recording, path))
    return tuple(found)


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for names the system cannot even look up (too long, NUL bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _unknown_keys(mapping: dict, allowed: set[str], where: str, out: _Collector) -> None:
    unknown = sorted(set(map(str, mapping)) - allowed)
    if unknown:
        out.add(f"'{where}': unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _parse(doc: dict, path: Path) -> tuple[Manifest, list[Problem]]:
    out = _Collector(path)
    _unknown_keys(doc, {"name", "trials", "recordings", "channels", "preprocessing", "ratings"}, "manifest", out)
    if not isinstance(doc.get("trials"), str) or "\0" in doc["trials"]:
        out.add(f"'trials' must name the trials table (a CSV file), got {_short(doc.get('trials'))}")
    manifest = Manifest(
        path=path,
        trials=path.parent / str(doc.get("trials", "")),
        recordings=_parse_recordings(doc.get("recordings"), path.parent, out),
        channels=_parse_channels(doc.get("channels"), out),
        preprocessing=_parse_preprocessing(doc.get("preprocessing"), out),
        rating_range=_parse_ratings(doc.get("ratings"), out),
        name=str(doc.get("name", path.stem)),
    )
    return manifest, out.problems


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and parse a manifest (YAML or TOML); paths in it are taken from its folder.

    Parameters
    ----------
    path : path-like
        ``.yaml``/``.yml`` (read with PyYAML) or ``.toml`` (tomllib).

    Returns
    -------
    Manifest
        Parsed only: the files it names are checked by :func:`validate_manifest`.

    Raises
    ------
    ManifestError
        A missing or malformed file, or any number of structural problems (all listed).
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ManifestError(path, [Problem("missing-file", str(path), "manifest file not found")])
    manifest, problems = _parse(_read_document(path), path)
    if problems:
        raise ManifestError(path, problems)
    return manifest


def _as_manifest(manifest: Manifest | str | os.PathLike) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


# --- the trials table -------------------------------------------------------------------------

def read_trials(manifest: Manifest):
    """The trials table with every optional column filled in, and the problems found reading it.

    Returns
    -------
    table : pandas.DataFrame or None
        None when the file is missing, unreadable or lacks required columns. Otherwise one row
        per trial with ``line`` (its line in the CSV), ``baseline_s`` (default 0),
        ``baseline_onset_s`` (default right before the onset) and every rating of
        :data:`~kdlib.data.recording.RATING_NAMES` (NaN where absent).
    problems : list of Problem
    """
    import pandas as pd

    where = str(manifest.trials)
    if not _is_file(manifest.trials):
        return None, [Problem("missing-file", where, "trials table not found")]
    try:
        table = pd.read_csv(manifest.trials, dtype={"subject": str, "recording": str}, skipinitialspace=True)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        return None, [Problem("unreadable-file", where, f"not a readable CSV file: {exc}")]
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in _REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        return None, [Problem("missing-column", where, f"missing column(s) {missing}; "
                              f"found {list(table.columns)}")]
    table.insert(0, "line", np.arange(len(table)) + 2)  # line 1 is the header
    numeric = ["onset_s", "duration_s", "baseline_s", "baseline_onset_s", "trial", *RATING_NAMES]
    for col in numeric:
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    if "baseline_s" not in table.columns:
        table["baseline_s"] = 0.0
    table["baseline_s"] = table["baseline_s"].fillna(0.0)
    if "baseline_onset_s" not in table.columns:
        table["baseline_onset_s"] = np.nan
    table["baseline_onset_s"] = table["baseline_onset_s"].fillna(table["onset_s"] - table["baseline_s"])
    for name in RATING_NAMES:
        if name not in table.columns:
            table[name] = np.nan
    return table, []


# --- the recording files a manifest names -----------------------------------------------------

def _recording_files(rec: RecordingFile) -> list[Path]:
    """A recording's file and its data sidecars."""
    return [rec.path] + [rec.path.with_suffix(s) for s in _SIDECARS
                         if s != rec.path.suffix.lower() and _is_file(rec.path.with_suffix(s))]


def _read_raw(path: Path, manifest: Manifest, preload: bool):
    """:func:`mne.io.read_raw` with the manifest's renaming applied."""
    import mne

    raw = mne.io.read_raw(path, preload=preload, verbose="error")
    rename = {old: new for old, new in manifest.channels.rename if old in raw.ch_names}
    if rename:
        raw.rename_channels(rename)
    return raw
