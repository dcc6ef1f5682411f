"""Small bring-your-own-data sets for the tests: FIF recordings written with MNE, a trials
table and a YAML manifest."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pandas as pd
import yaml

EEG = ["Fz", "Cz", "Pz"]
EOG_ELECTRODES = ["LO1", "LO2", "VU", "VL"]  # left/right canthus, above/below the eye
FS = 128.0
DURATION_S = 40.0


def write_fif(path: Path, signals_uv: dict[str, np.ndarray], fs: float) -> Path:
    """A FIF file (double precision) of the given channels, in microvolts, all typed EEG."""
    info = mne.create_info(list(signals_uv), fs, "eeg")
    data = np.stack(list(signals_uv.values())) * 1e-6  # (C, T) volts
    mne.io.RawArray(data, info, verbose="error").save(path, fmt="double", overwrite=True, verbose="error")
    return path


def random_signals(seed: int, fs: float = FS, duration_s: float = DURATION_S) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(fs * duration_s)
    return {ch: rng.normal(0.0, 20.0, n) + rng.normal(0, 500) for ch in EEG + EOG_ELECTRODES}


def trial_rows(subject: str, recording: str, first_trial: int, onsets=(5.0, 13.0, 21.0, 29.0), seed: int = 0):
    rng = np.random.default_rng(seed)
    return [dict(subject=subject, recording=recording, trial=first_trial + i, onset_s=o, duration_s=6.0,
                 baseline_s=1.0, valence=float(rng.uniform(1, 9)), arousal=float(rng.uniform(1, 9)),
                 dominance=5.0, liking=float(rng.uniform(1, 9)))
            for i, o in enumerate(onsets)]


def manifest_doc(recordings, **changes) -> dict:
    doc = {
        "name": "test set",
        "trials": "trials.csv",
        "recordings": recordings,
        "channels": {"eeg": list(EEG), "eog": {"hEOG": ["LO1", "LO2"], "vEOG": ["VU", "VL"]}},
        "preprocessing": {"fs": FS, "eeg_band": None, "eeg_reference": None},
        "ratings": {"min": 1, "max": 9},
    }
    doc.update(changes)
    return doc


def write_manifest(folder: Path, doc: dict, rows: list[dict], name: str = "manifest.yaml") -> Path:
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def small_set(folder: Path) -> Path:
    """Two subjects: p01 with two recordings (trials 1-4 and 5-8), p02 with one (trials 1-4)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw").mkdir(exist_ok=True)
    recordings, rows = [], []
    for seed, (subject, rec, first) in enumerate([("p01", "run1", 1), ("p01", "run2", 5), ("p02", "run1", 1)]):
        write_fif(folder / "raw" / f"{subject}_{rec}_raw.fif", random_signals(seed), FS)
        recordings.append({"subject": subject, "id": rec, "file": f"raw/{subject}_{rec}_raw.fif"})
        rows += trial_rows(subject, rec, first, seed=seed)
    return write_manifest(folder, manifest_doc(recordings), rows)
