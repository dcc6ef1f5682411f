"""Report of a reproduction run: summary tables (Markdown + CSV) and figures.

``kdlib report RESULTS_DIR`` calls :func:`write_report`; ``notebooks/05_evaluation.ipynb`` shows
the same tables. Every method is reported as a mean over subjects with its 95 % interval (seeds
averaged within each subject first, :mod:`kdlib.stats`), beside the majority-class accuracy and
the chance band of a mean over subjects; the ablation's steps are paired contrasts with their
intervals, effect sizes and Holm-adjusted p-values. Runs on the synthetic set say so, and smoke
runs carry :data:`kdlib.plotting.SMOKE_NOTE` at the top of the summary and on every figure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .evaluate import METHODS, PAPER_RESULTS, load_results, paired_tests, summarize
from .io import atomic_write

__all__ = ["METHOD_NAMES", "STEP_COLUMNS", "run_info", "run_seeds", "is_smoke", "ablation_table", "step_table", "contrast_table",
           "ceiling_table", "run_ceilings", "write_report"]

#: How methods are named in tables and figures.
METHOD_NAMES = {
    "majority": "majority class",
    "eeg_only": "EEG-only net",
    "eog_only": "EOG-only net",
    "late_fusion": "late-fusion teacher",
    "teacher": "fusion teacher (EEG+EOG)",
    "scratch": "student from scratch (EOG)",
    "v1": "V1: Hinton KD (EOG)",
    "v2": "V2: + fused-feature KD (EOG)",
    "v3": "V3: + dynamic feedback (EOG)",
}


def run_info(run_dir: str | os.PathLike) -> dict:
    """The run's ``config.json`` (protocol and data description).

    Parameters
    ----------
    run_dir : path-like
        A run folder of :func:`kdlib.evaluate.run_protocol`.

    Returns
    -------
    dict
        ``{"protocol": ..., "data": ...}`` as the run stored it.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a kdlib run folder (no config.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); is this folder a kdlib run?") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ValueError(f"{path}: not valid JSON ({exc}); is this folder a kdlib run?") from None
    if not isinstance(info, dict) or not isinstance(info.get("protocol"), dict) or "data" not in info:
        raise ValueError(f"{path}: not a kdlib run record (no protocol and data sections)")
    return info


def run_seeds(info: dict) -> list[int]:
    """The seeds of a run: ``protocol.seeds`` (a list), or the older single ``protocol.seed``.

    Parameters
    ----------
    info : dict
        :func:`run_info` output.

    Returns
    -------
    list of int
    """
    proto = info["protocol"]
    if proto.get("seeds") is not None:
        return [int(s) for s in np.atleast_1d(proto["seeds"])]
    return [int(proto.get("seed", 0))]


def is_smoke(info: dict) -> bool:
    """Whether a run used the smoke presets (tiny models or a few epochs).

    Parameters
    ----------
    info : dict
        :func:`run_info` output.

    Returns
    -------
    bool
        True when ``model_preset`` or ``train_preset`` is ``"smoke"``.
    """
    proto = info["protocol"]
    return "smoke" in (proto.get("model_preset"), proto.get("train_preset"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}" if np.isfinite(x) else ""


def _ci(mean: float, low: float, high: float) -> str:
    """``"62.3 [58.1, 66.5]"`` in %; the mean alone when the interval is undefined."""
    if not np.isfinite(mean):
        return ""
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]" if np.isfinite(low) else f"{100 * mean:.1f}"


def _cell(row: pd.Series, metric: str) -> str:
    """One metric of a :func:`kdlib.stats.method_summary` row as ``mean [low, high]`` (empty if absent)."""
    if f"{metric}_mean" not in row:
        return ""
    return _ci(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"])


def _p(p: float) -> str:
    return "" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _share(row: pd.Series) -> str:
    """A :func:`kdlib.ceilings.gap_closed` row as ``"42 % [10, 75]"`` (the interval: Fieller's)."""
    if not np.isfinite(row["gap_closed"]):
        return ""
    inside = f" [{100 * row['ci_low']:.0f}, {100 * row['ci_high']:.0f}]" if row["bounded"] else " [unbounded]"
    return f"{100 * row['gap_closed']:.0f} %{inside}"


def ablation_table(results: pd.DataFrame, dataset: str = "synthetic", gaps: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ablation per task and method, in %, for reading (the numbers: :func:`kdlib.evaluate.summarize`).

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (with or without ``seed``).
    dataset : str
        The run's data set; for ``deap`` and ``custom`` (BJTU-style) V3's row shows the paper's
        reported accuracy.
    gaps : pandas.DataFrame, optional
        :func:`kdlib.ceilings.gap_closed` with ``ceiling="method"`` (synthetic data only): adds
        each method's own ceiling (the oracle of its inputs) and the share of the gap between
        the majority class and that ceiling it closes.

    Returns
    -------
    pandas.DataFrame
        One row per (task, method) with text columns: trial-level accuracy as mean [95 % CI]
        over subjects, its SD over subjects and its seed-to-seed SD, F1 averaged over folds and
        F1 pooled from the confusion counts (each mean [95 % CI]), window-level accuracy, the
        majority-class accuracy, the paper's number, the number of subjects and of seeds; with
        ``gaps``, ``ceiling (%)`` and ``gap closed [95 % CI]`` after the majority class.
    """
    from .ceilings import method_ceiling

    gap_of = {} if gaps is None else {(g["task"], g["method"]): g for _, g in gaps.iterrows()}
    _, overall = summarize(results)
    paper_key = {"deap": "deap", "custom": "bjtu"}.get(dataset)
    rows = []
    for _, r in overall.iterrows():
        paper = PAPER_RESULTS.get((paper_key, r["task"])) if r["method"] == "v3" else None
        rows.append({"task": r["task"], "method": METHOD_NAMES.get(r["method"], r["method"]),
                     "accuracy (trial, %) [95 % CI]": _cell(r, "acc_trial"),
                     "SD over subjects": _pct(r["acc_trial_sd"]),
                     "seed-to-seed SD": _pct(r["acc_trial_seed_sd"]),
                     "F1 (trial, fold mean, %)": _cell(r, "f1_trial"),
                     "F1 (trial, pooled, %)": _cell(r, "f1_trial_pooled"),
                     "accuracy (window, %)": _cell(r, "acc_window"),
                     "majority class (%)": _pct(r["majority_trial_mean"])})
        if gaps is not None:
            g = gap_of.get((r["task"], r["method"]))
            rows[-1].update({"ceiling (%)": "" if g is None else f"{_CEILING_NAMES[method_ceiling(r['method'])]} "
                                                                  f"{_pct(g['ceiling_mean'])}",
                             "gap closed [95 % CI]": "" if g is None else _share(g)})
        rows[-1].update({"paper (%)": f"{paper:.2f}" if paper else "",
                         "subjects": int(r["n_subjects"]), "seeds": int(r["n_seeds"])})
    return pd.DataFrame(rows)


_CEILING_NAMES = {"label_ceiling": "label", "eeg_ceiling": "EEG", "eog_ceiling": "EOG", "eeg_eog_ceiling": "EEG+EOG"}


def ceiling_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`kdlib.ceilings.ceiling_summary` formatted for reading (mean [95 % CI] over subjects, %).

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`kdlib.ceilings.ceiling_summary`.

    Returns
    -------
    pandas.DataFrame
        One row per task: the majority class, the label ceiling, the EEG, EOG and EEG+EOG oracle
        ceilings, subjects and seeds.
    """
    rows = []
    for _, r in summary.iterrows():
        row = {"task": r["task"], "majority class (%)": _cell(r, "majority_trial")}
        for col, name in _CEILING_NAMES.items():
            row[f"{name} ceiling (%)"] = _cell(r, col)
        rows.append({**row, "subjects": int(r["n_subjects"]), "seeds": int(r["n_seeds"])})
    return pd.DataFrame(rows)


def run_ceilings(info: dict) -> tuple[pd.DataFrame, str]:
    """The per-fold ceilings of a run, or an empty table and the one-line reason there are none.

    Parameters
    ----------
    info : dict
        :func:`run_info` output.

    Returns
    -------
    (ceilings, note) : tuple
        :func:`kdlib.ceilings.run_ceilings` and ``""``; or an empty DataFrame and why (real DEAP
        and custom data have no ground truth; a ground truth of other files is not used).
    """
    from . import ceilings

    try:
        return ceilings.run_ceilings(info), ""
    except ceilings.NoGroundTruth as exc:
        return pd.DataFrame(), f"No ceilings: {exc}."
    except OSError as exc:  # the data folder is gone
        return pd.DataFrame(), f"No ceilings (no ground truth to read): {str(exc).splitlines()[0]}"
    except ValueError as exc:  # GroundTruthError: unreadable, or written for other files
        return pd.DataFrame(), f"No ceilings (the ground truth is not usable): {str(exc).splitlines()[0]}"


#: Per-fold columns that say what each step of the method did (``kdlib.evaluate.run_unit``).
STEP_COLUMNS = ("n_teach_trials", "n_quiz_trials", "n_val_trials", "share_ce", "share_kd", "share_feat",
                "feedback_steps", "teacher_dp", "teacher_flips", "best_epoch")


def step_table(results: pd.DataFrame) -> pd.DataFrame:
    """What each step did, per task and method, averaged over every fold of the run.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table; the columns of :data:`STEP_COLUMNS` it holds are used (older runs lack some).

    Returns
    -------
    pandas.DataFrame
        One row per (task, method) that has any of them: the trials a fold taught on, held out as
        the quiz and for validation; the students' loss shares at the best epoch (CE, alpha * KD,
        beta * feature); for v3 the feedback steps per fold and how far they moved the teacher's
        outputs on the teaching windows (mean ``|delta p|``, share of predictions flipped).
    """
    cols = [c for c in STEP_COLUMNS if c in results]
    if not cols:
        return pd.DataFrame()
    table = results[results["method"] != "majority"].groupby(["task", "method"], sort=False)[cols].mean()
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.reset_index().sort_values(["task", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
    return table.dropna(axis=1, how="all").reset_index(drop=True)


def contrast_table(contrasts: pd.DataFrame, metric: str = "acc_trial") -> pd.DataFrame:
    """:func:`kdlib.stats.paired_contrasts` output of one metric, formatted for reading.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        Output of :func:`kdlib.stats.paired_contrasts`.
    metric : str
        Which metric's rows to show.

    Returns
    -------
    pandas.DataFrame
        Text columns: task, contrast, subjects, mean difference [95 % CI] in percentage points,
        paired-t p, Wilcoxon p, Cohen's d_z, Holm-adjusted p (t), seed-to-seed SD of the mean
        difference, and "inside the noise" (yes when the interval includes 0).
    """
    if contrasts.empty:
        return pd.DataFrame()
    part = contrasts[contrasts["metric"] == metric]
    return pd.DataFrame({
        "task": part["task"], "contrast": part["contrast"], "subjects": part["n_subjects"],
        "difference (pp) [95 % CI]": [_ci(m, lo, hi) for m, lo, hi in zip(part["mean_diff"], part["ci_low"],
                                                                          part["ci_high"])],
        "p (paired t)": part["p_t"].map(_p), "p (Wilcoxon)": part["p_wilcoxon"].map(_p),
        "d_z": part["cohen_dz"].map(lambda d: f"{d:.2f}" if np.isfinite(d) else ""),
        "p (Holm)": part["p_holm"].map(_p), "seed-to-seed SD (pp)": part["seed_sd"].map(_pct),
        "inside the noise": part["inside_noise"].map({True: "yes", False: "no"}),
    }).reset_index(drop=True)


def _chance_lines(chance: pd.DataFrame) -> list[str]:
    lines = []
    for _, c in chance.iterrows():
        n = (f"{c['n_trials_min']}" if c["n_trials_min"] == c["n_trials_max"]
             else f"{c['n_trials_min']}–{c['n_trials_max']}")
        lines.append(
            f"- **{c['task']}**: majority class {100 * c['majority_mean']:.1f} %, its band "
            f"{100 * c['majority_low']:.1f}–{100 * c['majority_high']:.1f} %; guessing (p = 0.5) "
            f"{100 * c['chance_low']:.1f}–{100 * c['chance_high']:.1f} % for the mean over {c['n_subjects']} "
            f"subjects of {n} test trials each ({c['band_method']}); one subject alone: "
            f"{100 * c['single_low']:.0f}–{100 * c['single_high']:.0f} %.")
    return lines


def _figure(plt, plotting, out: Path, name: str, draw, synthetic: bool, smoke: bool, size) -> Path:
    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    plotting.mark_synthetic(fig, synthetic)
    plotting.mark_smoke(fig, smoke)
    fig.tight_layout(rect=(0, 0.05 if smoke else 0, 1, 0.97 if synthetic else 1))
    path = out / name
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> list[Path]:
    """Write the tables (Markdown + CSV) and figures of a run.

    Parameters
    ----------
    run_dir : path-like
        A run folder of :func:`kdlib.evaluate.run_protocol`.
    out : path-like, optional
        Where to write (default: ``<run_dir>/report``).

    Returns
    -------
    list of Path
        The files written: ``summary.csv`` (per task and method: means, SDs, 95 % CIs, seed
        spread; :func:`kdlib.evaluate.summarize`), ``per_subject.csv``, ``per_seed.csv``,
        ``ablation.csv`` (:func:`ablation_table`), ``contrasts.csv``
        (:func:`kdlib.stats.paired_contrasts`), ``tests.csv`` (V3 against every method,
        :func:`kdlib.evaluate.paired_tests`), ``chance.csv`` (:func:`kdlib.stats.chance_table`),
        ``ceilings.csv`` and ``gap_closed.csv`` (:mod:`kdlib.ceilings`; empty where the data have no
        ground truth), one ``ablation_<task>.png`` (with the ceilings drawn on synthetic data) and
        one ``contrasts_<task>.png`` per task, and ``summary.md``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import plotting

    run_dir = Path(run_dir)
    info = run_info(run_dir)
    results = load_results(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    dataset = info["data"]["dataset"]
    synthetic, smoke = dataset == "synthetic", is_smoke(info)
    per_subject, overall = summarize(results)
    _, per_seed = stats.subject_means(results)
    fold_ceilings, ceiling_note = run_ceilings(info)
    gaps, ceil_summary = pd.DataFrame(), pd.DataFrame()
    if len(fold_ceilings):
        from . import ceilings

        try:
            gaps = ceilings.gap_closed(results, fold_ceilings, ceiling="method")
            ceil_summary = ceilings.ceiling_summary(fold_ceilings)
        except ValueError as exc:  # the ground truth describes other folds than the results'
            fold_ceilings, ceiling_note = pd.DataFrame(), f"No ceilings: {str(exc).splitlines()[0]}."
    table = ablation_table(results, dataset, gaps if len(gaps) else None)
    metrics = ("acc_trial", "f1_trial") + (("f1_trial_pooled",) if "f1_trial_pooled" in per_subject else ())
    contrasts = stats.paired_contrasts(results, metrics=metrics)
    tests = paired_tests(results) if "v3" in set(results["method"]) else pd.DataFrame()
    chance = stats.chance_table(results) if {"n_trials", "majority_trial"} <= set(results) else pd.DataFrame()
    steps = step_table(results)
    written = []
    for name, frame in (("summary.csv", overall), ("per_subject.csv", per_subject), ("per_seed.csv", per_seed),
                        ("ablation.csv", table), ("contrasts.csv", contrasts), ("tests.csv", tests),
                        ("chance.csv", chance), ("steps.csv", steps), ("ceilings.csv", fold_ceilings),
                        ("gap_closed.csv", gaps)):
        with atomic_write(out / name, "w") as fh:
            frame.to_csv(fh, index=False)
        written.append(out / name)
    plotting.set_style()
    seeds = sorted(set(results["seed"])) if "seed" in results else run_seeds(info)
    for task in sorted(set(results["task"])):
        subjects = per_subject[per_subject["task"] == task]

        def ablation(ax, subjects=subjects, task=task):
            plotting.plot_ablation(subjects, ax=ax, names=METHOD_NAMES)
            if len(ceil_summary):
                plotting.mark_ceilings(ax, ceil_summary, task)
            ax.set_title(f"{task}: trial-level accuracy per subject, mean and 95 % CI "
                         f"({info['protocol']['protocol']}, {len(seeds)} seed{'s' * (len(seeds) > 1)})")

        written.append(_figure(plt, plotting, out, f"ablation_{task}.png", ablation, synthetic, smoke, (8, 4.2)))
        part = contrasts[contrasts["task"] == task] if len(contrasts) else contrasts
        if len(part):
            def forest(ax, part=part, task=task):
                plotting.plot_contrasts(part, metric="acc_trial", ax=ax)
                ax.set_title(f"{task}: paired contrasts over {int(part['n_subjects'].max())} subjects")

            size = (7.5, 0.55 * part["contrast"].nunique() + 1.8)
            written.append(_figure(plt, plotting, out, f"contrasts_{task}.png", forest, synthetic, smoke, size))
    md = _markdown(info, results, table, contrasts, tests, chance, synthetic, smoke, steps,
                   ceiling_table(ceil_summary) if len(ceil_summary) else None, ceiling_note)
    with atomic_write(out / "summary.md", "w") as fh:
        fh.write(md)
    written.append(out / "summary.md")
    return written


def _ceiling_lines(ceilings: pd.DataFrame | None, note: str) -> list[str]:
    if ceilings is None:
        return ["## Ceilings", "", note or "No ceilings: this run's data have no ground truth.", ""]
    return ["## Ceilings (the generator's ground truth)", "",
            "What any model could reach on these folds (`kdlib.ceilings`): the *label ceiling* is the exact "
            "expected accuracy of the best classifier given the latent emotion and the rating-noise model; the "
            "*EEG*, *EOG* and *EEG+EOG ceilings* are oracles (logistic regression) fitted on the true emotion-"
            "bearing parameters of that modality on each fold's training trials, scored on its test trials. Mean "
            "[95 % CI] over subjects. In the ablation table, *ceiling* is each method's own (its inputs' oracle; "
            "EOG students: the EOG's) and *gap closed* is (method − majority) / (ceiling − majority), a ratio of "
            "means over subjects with Fieller's 95 % interval. Oracles are estimates on a few trials: a method "
            "can beat one by chance.", "",
            ceilings.to_markdown(index=False), ""]


def _markdown(info: dict, results: pd.DataFrame, table: pd.DataFrame, contrasts: pd.DataFrame,
              tests: pd.DataFrame, chance: pd.DataFrame, synthetic: bool, smoke: bool,
              steps: pd.DataFrame | None = None, ceilings: pd.DataFrame | None = None, ceiling_note: str = "") -> str:
    from .plotting import SMOKE_NOTE

    proto, data = info["protocol"], info["data"]
    planned = run_seeds(info)
    seeds = sorted(int(x) for x in results["seed"].unique()) if "seed" in results else planned
    missing = "" if set(planned) <= set(seeds) else f" (of {', '.join(map(str, planned))} planned)"
    folds = proto.get("n_folds") if proto["protocol"] != "loso" else "one per subject"
    epochs = "" if proto.get("epochs") is None else f" ({proto['epochs']} epochs)"
    control = "; **labels shuffled (control run)**" if proto.get("shuffle_labels") else ""
    lines = [f"**{SMOKE_NOTE}**", ""] if smoke else []
    lines += [
        f"# kdlib reproduction: {data['dataset']} data, {proto['protocol']} protocol",
        "",
        ("**SYNTHETIC DATA.** These numbers come from kdlib's synthetic DEAP-format set, whose emotion "
         "effects are built in by design: they say nothing about the method on real EEG/EOG.\n" if synthetic else ""),
        f"Subjects: {results['subject'].nunique()}; folds: {folds}; tasks: {', '.join(proto['tasks'])}; "
        f"model preset: {proto.get('model_preset')}; train preset: {proto.get('train_preset')}{epochs}; "
        f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}{missing}{control}",
        "",
        "## Ablation (trial-level vote; mean and 95 % CI over subjects)",
        "",
        "Each subject's score is the mean over its folds within a seed, then over the seeds; the interval "
        "is the t interval over subjects (the independent units). *Seed-to-seed SD*: how much the mean over "
        "subjects moves from one seed to the next (empty with one seed): run-to-run noise. *F1 pooled*: macro "
        "F1 of the confusion counts summed over folds and seeds, beside the mean of per-fold F1.",
        "",
        table.to_markdown(index=False),
        "",
    ]
    lines += _ceiling_lines(ceilings, ceiling_note)
    if len(chance):
        lines += ["## Chance for a mean over subjects", "",
                  "The 95 % band of the mean over subjects of a classifier that guesses each test trial "
                  "independently, beside the majority-class baseline (each subject guessing right at its "
                  "majority rate). A method's mean inside the band is not distinguishable from guessing.", ""]
        lines += _chance_lines(chance) + [""]
    if len(contrasts):
        lines += ["## Paired contrasts (trial-level accuracy, across subjects)", "",
                  "Mean difference in percentage points with its 95 % t interval, paired t and Wilcoxon "
                  "signed-rank p, Cohen's d_z, p Holm-adjusted across the contrasts of a task. *Inside the "
                  "noise*: the interval includes 0 (the interval is not adjusted for the several contrasts; the Holm p "
                  "is). Compare a difference also with its seed-to-seed SD: a step smaller than the run-to-run "
                  "noise is not shown to do anything. F1 contrasts are in `contrasts.csv`; the figure per task is "
                  "`contrasts_<task>.png`.", "",
                  contrast_table(contrasts).to_markdown(index=False), ""]
    if steps is not None and len(steps):
        lines += ["## What each step did (means over every fold)", "",
                  "Trials per fold the models were taught on, held out as the quiz (variation 3's feedback "
                  "batches; no model trains on them) and for validation; each student's loss shares at its best "
                  "epoch; for V3 the feedback steps per fold and how far they moved the teacher's outputs on the "
                  "teaching windows (`teacher_dp`: mean |Δp|; `teacher_flips`: share of predictions changed).", "",
                  steps.round(4).to_markdown(index=False), ""]
    lines += [
        "For reference, the paper reports for the full method (V3, EOG student, accuracy): DEAP valence "
        f"{PAPER_RESULTS[('deap', 'valence')]} %, arousal {PAPER_RESULTS[('deap', 'arousal')]} %; BJTU-Emotion "
        f"valence {PAPER_RESULTS[('bjtu', 'valence')]} %, arousal {PAPER_RESULTS[('bjtu', 'arousal')]} %. "
        "Leakage-free trial-level protocols on DEAP typically give 51–66 % for EEG; treat > ~70 % as a sign of leakage.",
    ]
    if len(tests):
        lines += ["", "## V3 against every other method (paired across subjects)", "",
                  tests.round(4).to_markdown(index=False)]
    return "\n".join(lines) + "\n"
