"""Bring your own data: any MNE-readable EEG + EOG recording, described by a manifest.

Introduced in ``notebooks/06_bring_your_own_data.ipynb``.

The paper's second data set (BJTU-Emotion) is not public. Labs that have it, or their own
EEG + EOG emotion recordings, describe them in a **manifest** (YAML or TOML) and get the same
per-subject :class:`~kdlib.data.recording.Recording` the DEAP loader gives, so every later
step (windows, folds, models, ``kdlib prepare``) runs on them unchanged.

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

What :func:`load_subject` does, per recording, on the continuous signal (so that filters see
no trial edges): read with :func:`mne.io.read_raw`, rename, resample to ``fs``
(:meth:`mne.io.Raw.resample`), form the EOG by explicit subtraction of the named electrodes
(before anything touches the EEG, so an electrode may serve both), then re-reference
(:meth:`~mne.io.Raw.set_eeg_reference`) and band-pass (:meth:`~mne.io.Raw.filter`) the EEG,
and cut the trials (:func:`kdlib.data.mne_io.recording_from_raw`). The EOG is **not** filtered
here: like DEAP's EOG it is band-passed later by :func:`kdlib.data.windows.make_windows`
(``PrepConfig.eog_band``), so it is filtered exactly once. Signals are kept in microvolts.

:func:`validate_manifest` reads only the file headers and reports **every** problem at once
(missing files, unknown channels, trials outside a recording, ratings out of range, duplicate
trial ids, ...), each naming the file, the table row or the channel.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .recording import RATING_NAMES, Recording
from .windows import DEFAULT, PrepConfig, WindowSet

__all__ = [
    "PROBLEM_KINDS",
    "Problem",
    "ManifestError",
    "RecordingFile",
    "EogDerivation",
    "ChannelMap",
    "Preprocessing",
    "Manifest",
    "load_manifest",
    "read_trials",
    "validate_manifest",
    "check_manifest_file",
    "load_subject",
    "bipolar_eog",
    "process_raw",
    "source_files",
    "prepare_custom",
    "subject_fingerprints",
]

#: Every kind of problem :func:`validate_manifest` and :func:`load_manifest` report.
PROBLEM_KINDS: tuple[str, ...] = (
    "manifest",  # structure or values of the manifest itself
    "missing-file",  # a file the manifest names does not exist
    "unreadable-file",  # it exists but MNE or pandas cannot read it
    "missing-column",  # the trials table lacks a required column
    "unknown-channel",  # a channel of the channel map is not in a recording
    "unknown-recording",  # a trial names a subject/recording the manifest does not list
    "bad-trial",  # non-numeric, non-positive or unequal durations, non-integer trial id
    "trial-outside-recording",  # a trial (or its baseline) extends beyond its recording
    "rating-out-of-range",  # a rating outside the scale, or a missing valence/arousal
    "duplicate-trial",  # the same trial id twice for one subject
    "no-trials",  # a subject with recordings but no trial
    "overlapping-trials",  # two trials of one recording share samples (they would leak across folds)
)
_REQUIRED_COLUMNS = ("subject", "recording", "trial", "onset_s", "duration_s", "valence", "arousal")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")  # subject ids become cache file names
_SIDECARS = (".fdt", ".eeg", ".vmrk", ".dat")  # data files beside .set / .vhdr headers
_UV = 1e6  # volts -> microvolts
_SAMPLES_PER_BYTE = 4  # a recording may declare at most this many samples per byte it holds (compression)
FS_RANGE = (32.0, 100_000.0)  #: allowed common sampling rates, Hz (the EOG band-pass reaches 15 Hz)


# --- problems ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, its files or its trials table.

    Attributes
    ----------
    kind : str
        One of :data:`PROBLEM_KINDS`.
    where : str
        The file, ``file:line`` of the trials table, or ``file: channel 'X'``.
    message : str
    """

    kind: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.kind}]"


class ManifestError(ValueError):
    """A manifest with problems; ``problems`` lists all of them, the message shows each."""

    def __init__(self, source: str | os.PathLike, problems):
        self.source = str(source)
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.source}: {len(self.problems)} problem(s):\n{lines}")

    def summary(self) -> str:
        """One line: the count and the first problem."""
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.source}: {len(self.problems)} problem(s); first: {self.problems[0]}{more}"


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


# --- reading the manifest ---------------------------------------------------------------------

MAX_MANIFEST_BYTES = 4 << 20  #: a manifest is text of a few kilobytes; larger files are refused
MAX_NODES = 200_000  #: values in a manifest once YAML aliases are expanded
MAX_NESTING = 64  #: nesting of YAML collections
MAX_KEYS = 1000  #: keys of one YAML mapping


class _Refused(Exception):
    """A manifest whose cost would be out of proportion to its size (see :func:`_yaml_loader`)."""


def _read_document(path: Path) -> dict:
    """The manifest file as a dict (YAML by PyYAML, TOML by tomllib); ManifestError otherwise."""
    suffix = path.suffix.lower()
    fail = lambda message: ManifestError(path, [Problem("manifest", str(path), message)])  # noqa: E731
    if suffix not in (".yaml", ".yml", ".toml"):
        raise fail(f"unknown manifest format {suffix!r}: use .yaml, .yml or .toml")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise fail(f"{size} bytes is too large for a manifest (at most {MAX_MANIFEST_BYTES}); "
                   "list the trials in the trials table")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}): "
                   "save the manifest as UTF-8") from None
    try:
        doc = _yaml().load(text, Loader=_yaml_loader()) if suffix != ".toml" else _tomllib().loads(text)
    except ManifestError:
        raise
    except _Refused as exc:
        raise fail(f"refused: {exc}") from None
    except RecursionError:
        raise fail(f"not valid {suffix[1:].upper()}: nested too deeply") from None
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"not valid {suffix[1:].upper()}: {first}") from None
    if not isinstance(doc, dict):
        raise fail("the manifest must be a mapping of keys")
    return doc


def _expanded_size(root) -> int:
    """Nodes of a composed YAML graph with every alias expanded; :class:`_Refused` on a cycle or
    beyond :data:`MAX_NODES` (iterative: the graph may be deep once aliases are followed)."""
    sizes: dict[int, int] = {}
    stack, open_ = [(root, False)], set()
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            open_.discard(id(node))
            sizes[id(node)] = total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                raise _Refused(f"its aliases expand to more than {MAX_NODES} values (a 'billion laughs' document?)")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_:
            raise _Refused("an alias refers to a collection that contains it")
        open_.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _Refused("an alias refers to a collection that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node) -> list:
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return []
    if value and isinstance(value[0], tuple):
        if len(value) > MAX_KEYS:  # keys are hashed into a dict: numbers chosen to collide cost n^2
            raise _Refused(f"a mapping with more than {MAX_KEYS} keys")
        return [x for pair in value for x in pair]
    return list(value)


def _yaml_loader():
    """PyYAML's SafeLoader, bounded: collections nested at most :data:`MAX_NESTING` deep, and at
    most :data:`MAX_NODES` values once aliases are expanded (refused before anything is built)."""
    yaml = _yaml()

    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise _Refused(f"collections nested deeper than {MAX_NESTING} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def compose_document(self):
            node = super().compose_document()
            if node is not None:
                _expanded_size(node)
            return node

    return BoundedLoader


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with the notebooks and test extras
        raise ManifestError("manifest", [Problem("manifest", "PyYAML", "YAML manifests need PyYAML "
                                                 "(pip install pyyaml); or write the manifest in TOML")]) from None
    return yaml


def _tomllib():
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ManifestError("manifest", [Problem("manifest", "tomli", "TOML manifests need "
                                                     "Python >= 3.11 or tomli (pip install tomli)")]) from None
    return tomllib


class _Collector:
    """Collects problems of one manifest file while it is parsed."""

    def __init__(self, path: Path):
        self.where = str(path)
        self.problems: list[Problem] = []

    def add(self, message: str, kind: str = "manifest", where: str | None = None) -> None:
        self.problems.append(Problem(kind, where or self.where, message))


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


def _short(value, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for messages about values of any size."""
    import reprlib

    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _repeated(items) -> list:
    """The items that occur more than once, sorted (linear time: lists may be long)."""
    return sorted(x for x, n in Counter(items).items() if n > 1)


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


# --- validation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Header:
    """What validation needs from a recording: channel names (after renaming) and its length."""

    channels: tuple[str, ...]
    sfreq: float
    duration_s: float


def _read_raw(path: Path, manifest: Manifest, preload: bool):
    """:func:`mne.io.read_raw` with the manifest's renaming applied."""
    import mne

    raw = mne.io.read_raw(path, preload=preload, verbose="error")
    rename = {old: new for old, new in manifest.channels.rename if old in raw.ch_names}
    if rename:
        raw.rename_channels(rename)
    return raw


def _header(rec: RecordingFile, manifest: Manifest) -> tuple[_Header | None, list[Problem]]:
    where = str(rec.path)
    if not _is_file(rec.path):
        return None, [Problem("missing-file", where, f"recording {rec.recording!r} of subject "
                              f"{rec.subject!r} not found")]
    try:
        raw = _read_raw(rec.path, manifest, preload=False)
    except Exception as exc:  # MNE raises many types for foreign or corrupt files
        return None, [Problem("unreadable-file", where, f"MNE cannot read it: {type(exc).__name__}: {exc}")]
    fs = float(raw.info["sfreq"])
    if not (math.isfinite(fs) and fs > 0):
        return None, [Problem("unreadable-file", where, f"its header gives a sampling rate of {fs!r} Hz")]
    on_disk = sum(p.stat().st_size for p in _recording_files(rec))
    declared = raw.n_times * len(raw.ch_names)
    per_byte = 16 * _SAMPLES_PER_BYTE if rec.path.name.lower().endswith(".gz") else _SAMPLES_PER_BYTE
    if declared > per_byte * on_disk + 1_000_000:
        return None, [Problem("unreadable-file", where, f"its header declares {raw.n_times} samples x "
                              f"{len(raw.ch_names)} channels, more than its {on_disk} bytes can hold "
                              "(a damaged header?)")]
    return _Header(tuple(raw.ch_names), fs, raw.n_times / fs), []


def _channel_problems(rec: RecordingFile, header: _Header, manifest: Manifest) -> list[Problem]:
    ch, have = manifest.channels, set(header.channels)
    wanted = {"EEG": ch.eeg, "EOG": ch.eog_electrodes,
              "reference": manifest.preprocessing.reference_channels}
    problems = [Problem("unknown-channel", f"{rec.path}: channel {name!r}",
                        f"{role} channel not in the recording (it has: {', '.join(header.channels)})")
                for role, names in wanted.items() for name in names if name not in have]
    problems += [Problem("unknown-channel", f"{rec.path}: channel {old!r}", "'channels.rename' names "
                         "a channel the recording does not have")
                 for old, new in ch.rename if new not in have]  # renamed already: old -> new
    if header.sfreq < manifest.preprocessing.fs:
        problems.append(Problem("manifest", str(rec.path), f"sampled at {header.sfreq:g} Hz, below the "
                                f"common rate {manifest.preprocessing.fs:g} Hz: lower preprocessing.fs"))
    return problems


def _row_problems(row, where: str, header: _Header | None, manifest: Manifest) -> list[Problem]:
    values = {k: row[k] for k in ("onset_s", "duration_s", "baseline_s", "baseline_onset_s", "trial")}
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
        return [Problem("bad-trial", where, f"{', '.join(bad)} must be numbers")]
    problems = []
    if row["trial"] != int(row["trial"]):
        problems.append(Problem("bad-trial", where, f"trial id must be an integer, got {row['trial']:g}"))
    if row["duration_s"] <= 0 or row["baseline_s"] < 0:
        problems.append(Problem("bad-trial", where, "duration_s must be > 0 and baseline_s >= 0"))
    crop = manifest.preprocessing.trial_duration_s
    if crop is not None and row["duration_s"] < crop:
        problems.append(Problem("bad-trial", where, f"duration_s {row['duration_s']:g} is shorter than "
                                f"preprocessing.trial_duration_s {crop:g}"))
    if header is not None:
        start = min(row["baseline_onset_s"], row["onset_s"])
        end = max(row["onset_s"] + row["duration_s"], row["baseline_onset_s"] + row["baseline_s"])
        if start < 0 or end > header.duration_s + 1e-9:
            problems.append(Problem("trial-outside-recording", where, f"trial {int(row['trial'])} spans "
                                    f"{start:g}-{end:g} s, the recording {row['recording']!r} lasts "
                                    f"{header.duration_s:g} s"))
    return problems + _rating_problems(row, where, manifest.rating_range)


def _rating_problems(row, where: str, scale: tuple[float, float]) -> list[Problem]:
    lo, hi = scale
    problems = []
    for name in RATING_NAMES:
        value, required = row[name], name in ("valence", "arousal")
        if not np.isfinite(value):
            if required:
                problems.append(Problem("rating-out-of-range", where, f"{name} is missing or not a number"))
        elif not lo <= value <= hi:
            problems.append(Problem("rating-out-of-range", where, f"{name} = {value:g} is outside the "
                                    f"scale [{lo:g}, {hi:g}]"))
    return problems


def _subject_problems(rows, subject: str, where: str, manifest: Manifest) -> list[Problem]:
    """Duplicate trial ids and unequal trial lengths within one subject."""
    problems = []
    dup = rows[rows["trial"].duplicated(keep=False) & np.isfinite(rows["trial"])]
    for trial, group in dup.groupby("trial"):
        lines = ", ".join(map(str, group["line"]))
        problems.append(Problem("duplicate-trial", f"{where}:{group['line'].iloc[1]}",
                                f"subject {subject!r} has trial id {int(trial)} more than once (lines {lines})"))
    problems += _overlap_problems(rows, subject, where, manifest.preprocessing.trial_duration_s)
    columns = ["baseline_s"] + (["duration_s"] if manifest.preprocessing.trial_duration_s is None else [])
    for col in columns:
        values = rows[col].dropna().unique()
        if len(values) > 1:
            hint = "; set preprocessing.trial_duration_s to cut them to one length" if col == "duration_s" else ""
            problems.append(Problem("bad-trial", f"{where} (subject {subject})", f"trials of one subject need "
                                    f"the same {col}, found {sorted(values.tolist())}{hint}"))
    return problems


def _overlap_problems(rows, subject: str, where: str, crop: float | None) -> list[Problem]:
    """Trials of one recording that share samples: windows cut from both would carry one
    stretch of signal into two trials, and so across folds (a leak)."""
    problems = []
    cols = ["onset_s", "duration_s"]
    ok = rows[np.isfinite(rows[cols]).all(axis=1) & (rows["duration_s"] > 0)]
    for recording, group in ok.groupby("recording", sort=False):
        group = group.sort_values(["onset_s", "line"], kind="stable")
        ends = group["onset_s"] + (crop if crop is not None else group["duration_s"])
        prev_end, prev_line = -np.inf, None
        for onset, end, line in zip(group["onset_s"], ends, group["line"]):
            if onset < prev_end - 1e-9:
                problems.append(Problem("overlapping-trials", f"{where}:{line}", f"subject {subject!r}, "
                                        f"recording {recording!r}: the trial at {onset:g} s starts before "
                                        f"the trial of line {prev_line} ends ({prev_end:g} s)"))
            if end > prev_end:
                prev_end, prev_line = end, line
    return problems


def validate_manifest(manifest: Manifest | str | os.PathLike, subjects=None) -> list[Problem]:
    """Every problem of a manifest's files and trials, without stopping at the first.

    Reads only the recordings' headers (MNE, ``preload=False``) and the trials table.

    Parameters
    ----------
    manifest : Manifest or path-like
        A path is loaded with :func:`load_manifest` (which raises :class:`ManifestError` for
        structural problems).
    subjects : iterable of str, optional
        Check only these subjects (default: all).

    Returns
    -------
    list of Problem
        Empty when the data set is ready for :func:`load_subject`. Kinds: :data:`PROBLEM_KINDS`.
    """
    manifest = _as_manifest(manifest)
    chosen = manifest.subjects if subjects is None else tuple(str(s) for s in subjects)
    problems = [Problem("manifest", str(manifest.path), f"subject {s!r} is not in the manifest")
                for s in chosen if s not in manifest.subjects]
    problems += [Problem("manifest", str(manifest.path), f"subject {s!r} is chosen more than once")
                 for s in _repeated(chosen)]
    headers: dict[tuple[str, str], _Header | None] = {}
    for rec in manifest.recordings:
        if rec.subject not in chosen:
            continue
        header, found = _header(rec, manifest)
        headers[(rec.subject, rec.recording)] = header
        problems += found + (_channel_problems(rec, header, manifest) if header else [])
    table, found = read_trials(manifest)
    problems += found
    if table is not None:
        rows = table if subjects is None else table[table["subject"].isin(chosen)]  # all: unknown subjects too
        problems += _table_problems(rows, chosen, headers, manifest)
    return problems


def _table_problems(table, chosen, headers, manifest: Manifest) -> list[Problem]:
    csv = str(manifest.trials)
    known = {(r.subject, r.recording) for r in manifest.recordings}
    problems = []
    for row in table.itertuples(index=False):
        row = row._asdict()
        where = f"{csv}:{row['line']}"
        if (row["subject"], row["recording"]) not in known:
            problems.append(Problem("unknown-recording", where, f"subject {row['subject']!r} has no recording "
                                    f"{row['recording']!r} in the manifest"))
            problems += _rating_problems(row, where, manifest.rating_range)
            continue
        problems += _row_problems(row, where, headers.get((row["subject"], row["recording"])), manifest)
    for subject in chosen:
        rows = table[table["subject"] == subject]
        if subject in manifest.subjects and rows.empty:
            problems.append(Problem("no-trials", csv, f"subject {subject!r} has recordings but no trial"))
        problems += _subject_problems(rows, subject, csv, manifest)
    return problems


def check_manifest_file(path: str | os.PathLike) -> tuple[Manifest | None, list[Problem]]:
    """Load and validate in one go: the manifest (None if it could not be parsed) and every
    problem found, structural or not. What ``kdlib validate-manifest`` runs."""
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        return None, list(exc.problems)
    return manifest, validate_manifest(manifest)


def _require_valid(manifest: Manifest, subjects) -> None:
    problems = validate_manifest(manifest, subjects)
    if problems:
        raise ManifestError(manifest.path, problems)


# --- loading ----------------------------------------------------------------------------------

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
    from .mne_io import recording_from_raw

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


# --- preparing windows, through the cache -----------------------------------------------------

def source_files(manifest: Manifest, subject: str) -> list[Path]:
    """Every file one subject's data is read from: its recordings and their data sidecars
    (``.fdt`` of EEGLAB, ``.eeg``/``.vmrk`` of BrainVision, with the same stem)."""
    return [f for rec in manifest.recordings_of(subject) for f in _recording_files(rec)]


def _recording_files(rec: RecordingFile) -> list[Path]:
    """A recording's file and its data sidecars."""
    return [rec.path] + [rec.path.with_suffix(s) for s in _SIDECARS
                         if s != rec.path.suffix.lower() and _is_file(rec.path.with_suffix(s))]


def _cache_text(manifest: Manifest, table, subject: str) -> str:
    """What shapes one subject's windows besides its files: settings and its trial rows."""
    rows = table[table["subject"] == subject].drop(columns="line")
    recordings = [(r.recording, r.path.name) for r in manifest.recordings_of(subject)]
    return f"custom|{manifest.describe()}|{recordings}|{rows.to_csv(index=False)}"


def prepare_custom(manifest: Manifest | str | os.PathLike, config: PrepConfig = DEFAULT, subjects=None,
                   cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                   progress: bool = True) -> WindowSet:
    """Windows of every (or the chosen) subject of a custom data set, through the disk cache.

    Parameters
    ----------
    manifest : Manifest or path-like
    config : PrepConfig
        Windows, baseline correction, EOG band-pass and label rule, as for DEAP.
    subjects : iterable of str, optional
        Default: every subject of the manifest, in manifest order.
    cache_dir : path-like, optional
        Default :func:`kdlib.paths.cache_dir`. The key covers ``config``, the manifest's
        preprocessing and channel map, the subject's trial rows and every source file.
    use_cache : bool
    progress : bool

    Returns
    -------
    WindowSet

    Raises
    ------
    ManifestError
        Every problem of the chosen subjects, before anything is read in full.
    """
    from tqdm.auto import tqdm

    from .cache import cached_windows, clean_temporaries
    from .windows import concat_windows

    manifest = _as_manifest(manifest)
    chosen = manifest.subjects if subjects is None else tuple(str(s) for s in subjects)
    if not chosen:
        raise ManifestError(manifest.path, [Problem("manifest", str(manifest.path), "the subject list is empty")])
    _require_valid(manifest, chosen)
    table, _ = read_trials(manifest)
    if use_cache:
        clean_temporaries(cache_dir)
    parts = [cached_windows(s, source_files(manifest, s), config,
                            lambda s=s: load_subject(manifest, s, validate=False), cache_dir, use_cache,
                            extra=_cache_text(manifest, table, s))
             for s in tqdm(chosen, desc="prepare", unit="subject", disable=not progress)]
    return concat_windows(parts)


def subject_fingerprints(manifest: Manifest | str | os.PathLike, subjects=None) -> dict[str, str]:
    """The fingerprint of every (or every chosen) subject of a custom data set.

    Each covers the subject's source files and what else shapes its windows (settings, channel
    map, its trial rows), as its cache key does. What a run folder records of its data
    (:meth:`kdlib.evaluate.DataSpec.fingerprint`).

    Parameters
    ----------
    manifest : Manifest or path-like
    subjects : iterable of str, optional
        Default: every subject of the manifest.

    Returns
    -------
    dict
        ``{subject: fingerprint}`` (:func:`kdlib.data.cache.source_fingerprint`).

    Raises
    ------
    ManifestError
        An unreadable trials table, a missing recording, a subject not in the manifest.
    """
    from .cache import source_fingerprint

    manifest = _as_manifest(manifest)
    chosen = manifest.subjects if subjects is None else tuple(str(s) for s in subjects)
    table, problems = read_trials(manifest)
    problems += [Problem("missing-file", str(r.path), f"recording {r.recording!r} of subject {r.subject!r} not found")
                 for r in manifest.recordings if r.subject in chosen and not _is_file(r.path)]
    problems += [Problem("manifest", str(manifest.path), f"subject {s!r} is not in the manifest")
                 for s in chosen if s not in manifest.subjects]
    if problems:
        raise ManifestError(manifest.path, problems)
    return {s: source_fingerprint(source_files(manifest, s), _cache_text(manifest, table, s)) for s in chosen}
