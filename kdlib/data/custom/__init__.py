"""Bring your own data: any MNE-readable EEG + EOG recording, described by a manifest.

Introduced in ``notebooks/06_bring_your_own_data.ipynb``.

The paper's second data set (BJTU-Emotion) is not public. Labs that have it, or their own
EEG + EOG emotion recordings, describe them in a **manifest** (YAML or TOML) and get the same
per-subject :class:`~kdlib.data.recording.Recording` the DEAP loader gives, so every later
step (windows, folds, models, ``kdlib prepare``) runs on them unchanged.

The package's modules, each importing only those above it::

    problems    Problem, ManifestError, PROBLEM_KINDS: what can be wrong, and how it is said
    document    the manifest file read safely into a dict (bounded YAML, TOML)
    manifest    load_manifest, read_trials: the manifest and its trials table, parsed
                (the manifest's keys and the table's columns are documented there)
    validation  validate_manifest, check_manifest_file: every problem of the files and trials at once
    loading     load_subject, process_raw, bipolar_eog: one subject as a Recording
    caching     prepare_custom, subject_fingerprints, source_files: windows through the disk cache
    writing     write_recording (EDF/BDF), quantisation_step, monopolar_eog, write_example_set,
                isolated_onsets: the files of a data set written from arrays (notebook 06's example)

Every public name is re-exported here (``from kdlib.data.custom import load_subject``).
"""

from __future__ import annotations

from .caching import prepare_custom, source_files, subject_fingerprints
from .document import MAX_KEYS, MAX_MANIFEST_BYTES, MAX_NESTING, MAX_NODES  # limits, as before the split
from .loading import bipolar_eog, load_subject, process_raw
from .manifest import (FS_RANGE, ChannelMap, EogDerivation, Manifest, Preprocessing, RecordingFile, load_manifest,
                       read_trials)
from .problems import PROBLEM_KINDS, ManifestError, Problem
from .validation import check_manifest_file, validate_manifest
from .writing import (DIGITAL_MAX, EOG_ELECTRODES, ExampleSet, isolated_onsets, monopolar_eog, quantisation_step,
                      write_example_set, write_recording)

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
    "DIGITAL_MAX",
    "EOG_ELECTRODES",
    "quantisation_step",
    "write_recording",
    "monopolar_eog",
    "ExampleSet",
    "write_example_set",
    "isolated_onsets",
]
