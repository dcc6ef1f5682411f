"""Every problem of a custom data set's files and trials, without reading the signals in full.

Part of :mod:`kdlib.data.custom`.

:func:`validate_manifest` reads only the file headers and reports **every** problem at once
(missing files, unknown channels, trials outside a recording, ratings out of range, duplicate
trial ids, ...), each naming the file, the table row or the channel.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..recording import RATING_NAMES
from .manifest import (Manifest, RecordingFile, _as_manifest, _is_file, _read_raw, _recording_files, load_manifest,
                       read_trials)
from .problems import ManifestError, Problem, _repeated

__all__ = ["validate_manifest", "check_manifest_file"]

_SAMPLES_PER_BYTE = 4  # a recording may declare at most this many samples per byte it holds (compression)


@dataclass(frozen=True)
class _Header:
    """What validation needs from a recording: channel names (after renaming) and its length."""

    channels: tuple[str, ...]
    sfreq: float
    duration_s: float


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
