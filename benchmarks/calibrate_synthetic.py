"""How hard is the synthetic data set? Band-power + logistic-regression accuracies per modality.

The numbers summarised in the "How hard is it?" section of :mod:`kdlib.data.synthetic` come from
this script (recorded in ``benchmarks/results/calibrate_synthetic.md``). Per subject: 4 s windows after the 3 s baseline (15 per trial), log band powers,
a standardised L2 logistic regression (scikit-learn defaults), 5-fold cross-validation grouped
by trial (no trial in both sides), labels "rating > 5". Window accuracy and trial accuracy (the
mean of a trial's window probabilities) are averaged over the folds, then over subjects; the
majority class is the training majority of each fold, scored on its test trials.

Features: EEG, 32 channels x 4 bands (theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz);
EOG, 2 channels x 5 bands (0.5-2, 2-4, 4-8, 8-13, 13-30 Hz) of each window minus its mean.
These are simple features, not the kit's networks: they show how much the built-in effects
give away, and how that compares with what leakage-free studies report for real DEAP.

Command (recorded in ``benchmarks/results/calibrate_synthetic.md``)::

    OMP_NUM_THREADS=1 python benchmarks/calibrate_synthetic.py --subjects 8 --seeds 0 1
    OMP_NUM_THREADS=1 python benchmarks/calibrate_synthetic.py --subjects 8 --seeds 0 1 --set eeg_to_eog=0
    OMP_NUM_THREADS=1 python benchmarks/calibrate_synthetic.py --subjects 8 --seeds 0 1 --preset privileged

``--set knob=value`` (repeatable) changes any :class:`kdlib.data.synthetic.SynthConfig` knob;
``--ceilings`` adds the ceilings of :mod:`kdlib.ceilings` on the default protocol's folds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kdlib.data import synthetic as syn

FS = 128
BASE = 384  # baseline samples
WIN = 4 * FS  # 4 s windows
EEG_BANDS = ((4, 8), (8, 13), (13, 30), (30, 45))
EOG_BANDS = ((0.5, 2), (2, 4), (4, 8), (8, 13), (13, 30))


def band_features(x: np.ndarray, bands, demean: bool) -> np.ndarray:
    """(n_trials, C, T) -> (n_trials * n_win, C * n_bands) log band powers of 4 s windows."""
    seg = x[..., BASE:]
    n_win = seg.shape[-1] // WIN
    w = seg[..., : n_win * WIN].reshape(*seg.shape[:2], n_win, WIN).transpose(0, 2, 1, 3)  # (n, W, C, WIN)
    if demean:
        w = w - w.mean(axis=-1, keepdims=True)
    freqs = np.fft.rfftfreq(WIN, 1 / FS)
    power = np.abs(np.fft.rfft(w * np.hanning(WIN), axis=-1)) ** 2  # (n, W, C, F)
    feats = [np.log(power[..., (freqs >= lo) & (freqs < hi)].mean(axis=-1) + 1e-12) for lo, hi in bands]
    out = np.stack(feats, axis=-1)  # (n, W, C, B)
    return out.reshape(out.shape[0] * n_win, -1)


def cv_scores(X: np.ndarray, y_trial: np.ndarray, n_win: int, n_folds: int = 5) -> dict:
    """Grouped-by-trial CV of a logistic regression: window and trial accuracy, majority."""
    groups = np.repeat(np.arange(len(y_trial)), n_win)
    y = np.repeat(y_trial, n_win)
    acc_w, acc_t, major = [], [], []
    for train, test in GroupKFold(n_folds).split(X, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[train], y[train])
        prob = model.predict_proba(X[test])[:, 1]
        acc_w.append(np.mean((prob > 0.5) == y[test]))
        trials = np.unique(groups[test])
        p_trial = np.array([prob[groups[test] == t].mean() for t in trials])
        acc_t.append(np.mean((p_trial > 0.5) == y_trial[trials]))
        majority = int(y[train].mean() >= 0.5)
        major.append(np.mean(y_trial[trials] == majority))
    return {"acc_window": np.mean(acc_w), "acc_trial": np.mean(acc_t), "majority_trial": np.mean(major)}


def calibrate(config: syn.SynthConfig, subjects: int, seeds) -> pd.DataFrame:
    """One row per (seed, subject, modality, task) with the CV accuracies."""
    rows = []
    for seed in seeds:
        cfg = replace(config, seed=seed, n_subjects=subjects)
        for i in range(subjects):
            arrays = syn.generate_subject(i, cfg)
            feats = {"EEG": band_features(arrays["data"][:, :32], EEG_BANDS, demean=False),
                     "EOG": band_features(arrays["data"][:, 32:34], EOG_BANDS, demean=True)}
            n_win = len(feats["EEG"]) // cfg.n_trials
            for k, task in enumerate(("valence", "arousal")):
                y = (arrays["labels"][:, k] > 5).astype(int)
                for modality, X in feats.items():
                    rows.append(dict(seed=seed, subject=i, modality=modality, task=task,
                                     **cv_scores(X, y, n_win)))
    return pd.DataFrame(rows)


def ceilings_of(config: syn.SynthConfig, subjects: int, seeds, folder) -> pd.DataFrame:
    """:func:`kdlib.ceilings.ceiling_summary` of the kit's default protocol (5 trial folds) on ``config``."""
    from kdlib import ceilings
    from kdlib.evaluate import DataSpec, ProtocolConfig

    syn.write_dataset(folder, replace(config, n_subjects=subjects), progress=False)
    spec = DataSpec(dataset="synthetic", data_dir=str(folder), cache_dir=str(Path(folder) / "cache"))
    table = ceilings.fold_ceilings(spec, ProtocolConfig(seeds=tuple(seeds), methods=("majority",)))
    return ceilings.ceiling_summary(table)


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"not a number: {text!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=sorted(syn.PRESETS), help="knobs to start from")
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                    help="change a SynthConfig knob (repeatable)")
    ap.add_argument("--ceilings", action="store_true",
                    help="also the ceilings (kdlib.ceilings) of the default protocol's folds on the same subjects")
    args = ap.parse_args(argv)
    knobs = {f.name for f in fields(syn.SynthConfig)}
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in knobs:
            ap.error(f"--set {item}: unknown knob {key!r}")
        changes[key] = _value(value)
    config = replace(syn.PRESETS[args.preset], **changes)
    t0 = time.perf_counter()
    table = calibrate(config, args.subjects, args.seeds)
    per_subject = table.groupby(["modality", "task", "subject"])[["acc_window", "acc_trial", "majority_trial"]].mean()
    summary = per_subject.groupby(["modality", "task"]).agg(["mean", "std"]) * 100
    summary.columns = [f"{m} {s} (%)" for m, s in summary.columns]
    print(f"generator version {syn.GENERATOR_VERSION}; preset {args.preset}; {args.subjects} subjects x seeds "
          f"{args.seeds}; changes: {changes or 'none'}; {time.perf_counter() - t0:.0f} s")
    print("mean and SD over subjects (seeds averaged within a subject first):")
    print(summary.round(1).to_markdown())
    if args.ceilings:
        with tempfile.TemporaryDirectory() as tmp:
            ceil = ceilings_of(config, args.subjects, args.seeds, tmp)
        cols = [c for c in ceil if c.endswith("_mean")]
        print("\nceilings on the default protocol's folds (5 trial folds, the seeds above), mean over subjects (%):")
        print((ceil.set_index("task")[cols] * 100).round(1).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
