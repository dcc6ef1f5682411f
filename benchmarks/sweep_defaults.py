"""Sweep: how the defaults of the student's loss (alpha, beta) and of the feedback schedule of
variation 3 (every_k, teacher lr, lambda, look-ahead lr) were chosen -- on validation trials only.

Command (the recorded run; about 25 minutes on 2 cores)::

    .venv/bin/python benchmarks/sweep_defaults.py --stage loss --jobs 2
    .venv/bin/python benchmarks/sweep_defaults.py --stage feedback --jobs 2

Protocol, per unit (subject x task x fold) of the synthetic default set (``kdlib synth``):
trial-level folds with validation (20 %) and quiz (15 %) trials carved out of the training
trials (``kdlib.data.splits.trial_kfold``), scaling fitted on the teaching windows, the fold's
kit-size teacher (``kdlib.models.DEFAULT``) trained with ``kdlib.train.DEFAULT``; then every
configuration of the stage trains a student of the fold from that teacher. Each is scored by the
validation trials of the fold: the student's validation accuracy and cross-entropy at its best
epoch (the epoch early stopping keeps, chosen on the same validation trials, so the score is
optimistic in the same way for every configuration). **The test trials of the fold are never
loaded**: the folds' test indices are dropped before anything is trained.

* ``--stage loss``: variation 2 over ``alpha x beta`` (the feature term standardised per token,
  ``feature_norm="layernorm"``), plus the loss shares at the best epoch, so that the chosen
  default is one where no term swamps the others.
* ``--stage feedback``: variation 3 over schedules, with variation 2 of the same fold as the
  reference, logging the feedback steps per fold and how far the teacher's outputs moved
  (``teacher_dp``, mean |delta p| on the teaching windows).

Results: ``benchmarks/results/sweep_<stage>.csv`` (one row per unit and configuration) and
``sweep_<stage>.md`` (means over units with their standard errors, and the choice). Units are
cached under ``build/sweep/<stage>/`` so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdlib import distill as kd  # noqa: E402
from kdlib import models, train  # noqa: E402
from kdlib.data import load_windows, synthetic  # noqa: E402
from kdlib.data.splits import fold_windows, trial_kfold  # noqa: E402
from kdlib.io import atomic_write  # noqa: E402
from kdlib.repro import seed_everything  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LOSS_GRID = [dict(alpha=a, beta=b) for a in (0.25, 0.5, 1.0) for b in (0.1, 0.3, 1.0)]
FEEDBACK_GRID = [  # (every_k, teacher_lr, lam, lookahead_lr); the first is the old default. every_k >= 4 keeps
    # V3 within 2x V2 per fold ((k * 1.08 + 3.63) / k variation-2 steps, bench_feedback.md); k = 2 would cost 2.9x
    dict(every_k=8, teacher_lr=1e-4, lam=1.0, lookahead_lr=0.1),
    dict(every_k=4, teacher_lr=1e-4, lam=1.0, lookahead_lr=0.1),
    dict(every_k=8, teacher_lr=1e-3, lam=1.0, lookahead_lr=0.1),
    dict(every_k=4, teacher_lr=1e-3, lam=1.0, lookahead_lr=0.1),
    dict(every_k=4, teacher_lr=1e-3, lam=10.0, lookahead_lr=0.1),
    dict(every_k=4, teacher_lr=1e-3, lam=1.0, lookahead_lr=1.0),
]


def configs(stage: str, base: kd.DistillConfig) -> dict[str, kd.DistillConfig]:
    """The configurations of a stage, by a readable name."""
    if stage == "loss":
        return {f"a={g['alpha']:g},b={g['beta']:g}": replace(base, method="v2", **g) for g in LOSS_GRID}
    out = {"v2": replace(base, method="v2", feedback="none")}
    for g in FEEDBACK_GRID:
        name = f"k={g['every_k']},tlr={g['teacher_lr']:g},lam={g['lam']:g},eta={g['lookahead_lr']:g}"
        out[name] = replace(base, method="v3", feedback="meta", feedback_config=replace(base.feedback_config, **g))
    return out


def run_unit(data_dir: str, subject: str, task: str, fold_index: int, stage: str, seed: int) -> pd.DataFrame:
    """Train the fold's teacher, then every configuration's student; score on validation only."""
    import torch

    torch.set_num_threads(1)
    ws = load_windows("synthetic", data_dir, subjects=[subject], progress=False)
    fold = trial_kfold(ws, task, 5, val_size=0.2, seed=seed, quiz_size=0.15)[fold_index]
    fold = replace(fold, test=fold.test[:0])  # the test trials are never looked at
    sides = fold_windows(ws, fold)
    tr, qz, va = sides["train"], sides["quiz"], sides["val"]
    model_cfg = models.DEFAULT.for_windows(ws)
    train_cfg = replace(train.DEFAULT, seed=seed, progress=False)
    seed_everything(seed)
    teacher = train.fit(models.FusionTeacher(model_cfg), tr, va, task, train_cfg).model
    rows = []
    for name, config in configs(stage, kd.V2).items():
        t0 = time.perf_counter()
        res = kd.distill(teacher, tr, va, task, config, train_cfg, quiz=qz if config.feedback == "meta" else None)
        best = res.history.loc[res.history["epoch"] == res.best_epoch].iloc[0]
        rows.append(dict(subject=subject, task=task, fold=fold_index, config=name, val_acc=best["val_acc"],
                         val_loss=best["val_loss"], best_epoch=res.best_epoch, seconds=time.perf_counter() - t0,
                         **res.summary()))
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame, stage: str) -> tuple[pd.DataFrame, str]:
    """Means over units with standard errors, and the configuration with the best mean val accuracy."""
    cols = [c for c in ("val_acc", "val_loss", "share_ce", "share_kd", "share_feat", "feedback_steps",
                        "teacher_dp", "teacher_flips", "seconds") if c in table]
    g = table.groupby("config", sort=False)
    mean = g[cols].mean()
    se = g[["val_acc", "val_loss"]].sem().add_suffix("_se")
    summary = pd.concat([mean, se], axis=1).reset_index()
    if stage == "feedback":  # paired against v2 of the same unit
        ref = table[table["config"] == "v2"].set_index(["subject", "task", "fold"])["val_acc"]
        diff = table.set_index(["subject", "task", "fold"]).assign(d=lambda t: t["val_acc"] - ref.reindex(t.index))
        d = diff.groupby("config", sort=False)["d"]
        summary["val_acc_minus_v2"] = summary["config"].map(d.mean())
        summary["val_acc_minus_v2_se"] = summary["config"].map(d.sem())
    candidates = summary[summary["config"] != "v2"]
    best = candidates.loc[candidates["val_acc"].idxmax(), "config"]
    return summary, best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=("loss", "feedback"), required=True)
    parser.add_argument("--subjects", default="s01,s02,s03,s04", help="synthetic subjects (default s01-s04)")
    parser.add_argument("--tasks", default="valence,arousal")
    parser.add_argument("--folds", default="0", help="fold indices of the 5 trial folds (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from joblib import Parallel, delayed

    data_dir = str(ROOT / "build" / "sweep" / "data")  # its own copy: data/synthetic holds what make test uses
    synthetic.write_dataset(data_dir, synthetic.PRESETS["default"], progress=False)
    cache = ROOT / "build" / "sweep" / args.stage
    cache.mkdir(parents=True, exist_ok=True)
    units = [(s, t, int(f)) for s in args.subjects.split(",") for t in args.tasks.split(",") for f in args.folds.split(",")]
    todo = [u for u in units if not (cache / f"{u[0]}_{u[1]}_{u[2]}.csv").is_file()]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    jobs = (delayed(run_unit)(data_dir, s, t, f, args.stage, args.seed) for s, t, f in todo)
    for (s, t, f), rows in zip(todo, Parallel(n_jobs=args.jobs, return_as="generator")(jobs)):
        with atomic_write(cache / f"{s}_{t}_{f}.csv", "w") as fh:
            rows.to_csv(fh, index=False)
        print(f"{s} {t} fold {f}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.concat([pd.read_csv(cache / f"{s}_{t}_{f}.csv") for s, t, f in units], ignore_index=True)
    summary, best = summarise(table, args.stage)
    with atomic_write(RESULTS / f"sweep_{args.stage}.csv", "w") as fh:
        table.to_csv(fh, index=False)
    command = f".venv/bin/python benchmarks/sweep_defaults.py {' '.join(argv if argv is not None else sys.argv[1:])}"
    lines = [f"# Sweep of the {args.stage} defaults (validation trials only)", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; load {load0:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after; {time.perf_counter() - t0:.0f} s for {len(todo)} new unit(s).", "",
             f"Units: subjects {args.subjects}, tasks {args.tasks}, folds {args.folds} of 5 (seed {args.seed}); "
             "synthetic default set, kit-size models (kdlib.models.DEFAULT, kdlib.train.DEFAULT). "
             "SYNTHETIC DATA: these choices are made on the kit's generated set.", "",
             "Means over units (± standard error over units):", "",
             summary.round(4).to_markdown(index=False), "",
             f"Best mean validation accuracy: **{best}**."]
    with atomic_write(RESULTS / f"sweep_{args.stage}.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
