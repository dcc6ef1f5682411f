"""Ceilings: how well any model could do, from the synthetic generator's ground truth.

Introduced in ``notebooks/05_evaluation.ipynb``; ``kdlib report`` shows them beside every
synthetic result, and ``notebooks/07_when_does_distillation_help.ipynb`` reads them.

Real recordings never tell what the right answer was. The synthetic generator does: beside the
``sNN.dat`` files it writes :data:`kdlib.data.synthetic.GROUND_TRUTH_FILE`, one row per trial with
the latent valence and arousal and the emotion-bearing parameters it used per modality (columns
``eeg__*`` and ``eog__*``; see the module docstring of :mod:`kdlib.data.synthetic`). From them,
for every (task, subject, fold, seed) of a run, on that run's own folds:

label ceiling
    The best expected accuracy *any* classifier can reach on the rating-derived labels. The
    signals depend on the emotion only through the latent, and the rating is the latent plus
    Gaussian noise of SD ``rating_noise_sd``, clipped to [1, 9]. So the probability that trial
    ``i`` is labelled high is exactly ``q_i = P(clip(latent_i + noise) > threshold)`` (for a
    threshold in [1, 9): ``Phi((latent_i - threshold) / rating_noise_sd)``; clipping only
    matters at the scale's ends), and the Bayes rule "predict high when ``q_i > 1/2``" is right
    with probability ``max(q_i, 1 - q_i)``. The label ceiling is the mean of that over the
    fold's test trials: exact, no simulation. With no rating noise it is 1; when the rating is a
    coin flip whatever the latent, it is 1/2, the rate of the majority class.
modality ceilings (``eeg_ceiling``, ``eog_ceiling``, ``eeg_eog_ceiling``)
    An *oracle*: a logistic regression (standardised inputs, scikit-learn's default L2, not
    tuned) fitted on the true emotion-bearing parameters of that modality only, on the fold's
    training trials (teaching + quiz + validation), scored on the labels of its test trials.
    The EEG depends on the latent only through its parameters; the EOG almost so (its 3 s
    baseline, with less than one blink on average, shares the trial's rate nuisance and so adds
    a trace more). The oracle thus sees everything about the emotion that the modality can
    show, without having to estimate it from a noisy signal: it is the information limit of an
    EEG-only or an EOG-only model trained on the same trials. It is an estimate on a few trials, not a hard bound: a
    model can beat it on one fold by luck, and it is loose where a modality shows a parameter
    only faintly (the EEG path into the EOG at a small ``eeg_to_eog``).

For every method, :func:`gap_closed` gives the share of the attainable gap it closes,
(method − majority) / (ceiling − majority), as a ratio of means over subjects with Fieller's
interval (:func:`kdlib.stats.ratio_interval`).

Real DEAP and custom data have no ground truth: :func:`fold_ceilings` then raises
:class:`NoGroundTruth`, and reports say in one line that no ceiling exists.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .data.synthetic import CONFIG_FILE, GROUND_TRUTH_FILE
from .data.windows import WindowSet, binarize, concat_windows, majority_class
from .evaluate import DataSpec, ProtocolConfig, Unit, _fold_of, plan_units, shuffle_trial_labels

__all__ = ["NoGroundTruth", "GroundTruthError", "CEILINGS", "MODALITY_PREFIXES", "has_ground_truth",
           "load_ground_truth", "label_probability", "label_ceiling", "oracle_accuracy", "fold_ceilings",
           "gap_closed", "method_ceiling", "modality_columns", "protocol_from_record", "run_ceilings",
           "ceiling_summary"]

#: Ceiling columns of :func:`fold_ceilings`.
CEILINGS = ("label_ceiling", "eeg_ceiling", "eog_ceiling", "eeg_eog_ceiling")
#: Which ground-truth columns each modality oracle reads (column-name prefixes).
MODALITY_PREFIXES = {"eeg_ceiling": ("eeg__",), "eog_ceiling": ("eog__",), "eeg_eog_ceiling": ("eeg__", "eog__")}
_REQUIRED = ("subject", "trial", "latent_valence", "latent_arousal", "rating_valence", "rating_arousal")
#: The ceiling that bounds each method: its inputs' oracle (EOG students: the EOG's).
_METHOD_CEILING = {"majority": "label_ceiling", "eeg_only": "eeg_ceiling", "eog_only": "eog_ceiling",
                   "late_fusion": "eeg_eog_ceiling", "teacher": "eeg_eog_ceiling", "scratch": "eog_ceiling",
                   "v1": "eog_ceiling", "v2": "eog_ceiling", "v3": "eog_ceiling"}


class NoGroundTruth(ValueError):
    """The data have no ground truth (real DEAP, custom data): no ceiling can be computed."""


class GroundTruthError(ValueError):
    """A ground-truth file that is missing, unreadable or does not match the data."""


def has_ground_truth(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` holds the synthetic generator's ground truth and its config.

    Parameters
    ----------
    data_dir : path-like
        A data folder (e.g. ``data/synthetic``).

    Returns
    -------
    bool
    """
    folder = Path(data_dir)
    return (folder / GROUND_TRUTH_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def load_ground_truth(data_dir: str | os.PathLike) -> pd.DataFrame:
    """The ground-truth table of a synthetic data folder, checked.

    Parameters
    ----------
    data_dir : path-like
        A folder written by :func:`kdlib.data.synthetic.write_dataset`.

    Returns
    -------
    pandas.DataFrame
        One row per (subject, trial): ``subject``, ``trial`` (0-based), ``latent_valence``,
        ``latent_arousal``, ``rating_valence``, ``rating_arousal`` and the ``eeg__*`` and
        ``eog__*`` parameters; ``attrs["rating_noise_sd"]`` from the folder's config.

    Raises
    ------
    GroundTruthError
        One line naming the file when it is missing, unreadable, incomplete or not finite.
    """
    folder = Path(data_dir)
    path = folder / GROUND_TRUTH_FILE
    if not path.is_file():
        raise GroundTruthError(f"{path}: no ground truth (only kdlib's synthetic data have one)")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"{path}: unreadable ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    missing = [c for c in _REQUIRED if c not in table]
    params = [c for c in table if c.startswith(("eeg__", "eog__"))]
    if missing or not params or table.empty:
        raise GroundTruthError(f"{path}: not a ground-truth table (missing {missing or 'parameter columns'})")
    numeric = table.drop(columns="subject")
    if not all(np.issubdtype(t, np.number) for t in numeric.dtypes) or not np.isfinite(numeric.to_numpy(float)).all():
        raise GroundTruthError(f"{path}: non-numeric or non-finite values")
    if table.duplicated(["subject", "trial"]).any():
        raise GroundTruthError(f"{path}: a (subject, trial) appears twice")
    table.attrs["rating_noise_sd"] = _rating_noise_sd(folder)
    table.attrs["source"] = str(path)
    return table


def _rating_noise_sd(folder: Path) -> float:
    path = folder / CONFIG_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["rating_noise_sd"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GroundTruthError(f"{path}: no readable rating_noise_sd ({type(exc).__name__})") from None
    if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise GroundTruthError(f"{path}: rating_noise_sd must be a number >= 0, got {value!r}")
    return float(value)


# --- the label ceiling ------------------------------------------------------------------------

def label_probability(latent, noise_sd: float, threshold: float = 5.0, rule: str = ">") -> np.ndarray:
    """``P(label = 1 | latent)`` under the generator's rating model, exactly.

    Parameters
    ----------
    latent : array-like
        Latent values (1-9 scale).
    noise_sd : float
        SD of the Gaussian rating noise (0: the rating is the latent).
    threshold, rule
        The label rule (:func:`kdlib.data.windows.binarize`): high if rating > (or >=) threshold.

    Returns
    -------
    ndarray of float
        The rating is ``clip(latent + noise, 1, 9)``: for '>' it exceeds a threshold in [1, 9)
        exactly when ``latent + noise`` does; above 9 nothing does, below 1 everything does
        ('>=' alike with the ends included).
    """
    from scipy.stats import norm

    latent = np.asarray(latent, dtype=float)
    if noise_sd == 0:
        p = binarize(np.clip(latent, 1.0, 9.0), threshold, rule).astype(float)
    else:
        p = norm.sf((threshold - latent) / noise_sd)  # P(latent + noise > threshold)
    low, high = (1.0, 9.0)
    if rule == ">":
        p = np.where(threshold >= high, 0.0, np.where(threshold < low, 1.0, p))
    else:
        p = np.where(threshold > high, 0.0, np.where(threshold <= low, 1.0, p))
    return p


def label_ceiling(latent, noise_sd: float, threshold: float = 5.0, rule: str = ">") -> float:
    """Expected accuracy of the Bayes rule that knows the latent: mean of ``max(q, 1 - q)``.

    Parameters
    ----------
    latent : array-like
        The latents of the test trials.
    noise_sd, threshold, rule
        As for :func:`label_probability`.

    Returns
    -------
    float
    """
    q = label_probability(latent, noise_sd, threshold, rule)
    return float(np.mean(np.maximum(q, 1 - q)))


# --- the modality oracles ---------------------------------------------------------------------

def oracle_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of a logistic regression on true parameters (standardised, default L2).

    Parameters
    ----------
    x_train : ndarray, shape (n_train, n_params)
    y_train : ndarray, shape (n_train,)
    x_test : ndarray, shape (n_test, n_params)
    y_test : ndarray, shape (n_test,)

    Returns
    -------
    float
        With one class only among the training labels, the accuracy of predicting it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        return float(np.mean(y_test == y_train[0]))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    return float(np.mean(model.predict(x_test) == y_test))


# --- per fold ---------------------------------------------------------------------------------

def _labels_only(ws: WindowSet) -> WindowSet:
    """``ws`` without its signals (the folds need subjects, trials and ratings only)."""
    empty = np.zeros((len(ws), 0, 0), dtype=np.float32)
    return replace(ws, eeg=empty, eog=empty)


def _windows(spec: DataSpec, config: ProtocolConfig) -> WindowSet:
    """The run's windows, one subject at a time, signals dropped (memory: labels only)."""
    from .data import cache, dataset_dir

    folder = dataset_dir(spec.dataset, spec.data_dir or None)
    subjects = list(config.subjects) or None
    if subjects is None:
        from .data.deap import subject_files, subject_id_from_path

        subjects = [subject_id_from_path(p) for p in subject_files(folder)]
    cdir = spec.cache_dir or None
    return concat_windows([_labels_only(cache.prepare_dataset(folder, spec.prep, subjects=[s], cache_dir=cdir,
                                                              progress=False)) for s in subjects])


def _truth_folder(spec: DataSpec) -> Path:
    from .data import dataset_dir

    if spec.dataset == "custom":
        raise NoGroundTruth("custom data have no ground truth: no ceilings (only kdlib's synthetic data know "
                            "the answer)")
    try:
        folder = dataset_dir(spec.dataset, spec.data_dir or None)
    except OSError as exc:  # no data folder at all: nothing to know the answer from
        raise NoGroundTruth(f"{str(exc).splitlines()[0]} (so no ground truth, no ceilings)") from None
    if not has_ground_truth(folder):
        raise NoGroundTruth(f"{folder}: no {GROUND_TRUTH_FILE}: no ceilings (real recordings have no ground truth)")
    return folder


def _check_ratings(truth: pd.DataFrame, ws: WindowSet) -> None:
    """The ground truth must describe the very files the windows came from."""
    trials = ws.trial_table()
    merged = trials.merge(truth, left_on=["subject", "trial"], right_on=["subject", "trial_1"], how="left")
    source = truth.attrs.get("source", GROUND_TRUTH_FILE)
    if merged["latent_valence"].isna().any():
        raise GroundTruthError(f"{source}: has no row for some trials of the data (another data set?)")
    for task in ("valence", "arousal"):
        if not np.allclose(merged[task], merged[f"rating_{task}"], atol=1e-4):
            raise GroundTruthError(f"{source}: its {task} ratings differ from the data files' (written for "
                                   "other files? rewrite the data set)")


def fold_ceilings(spec: DataSpec, config: ProtocolConfig) -> pd.DataFrame:
    """Ceilings of every (task, subject, fold, seed) of a run, on the run's own folds.

    Parameters
    ----------
    spec : DataSpec
        The run's data (``DataSpec.from_record(run_info(run)["data"])``).
    config : ProtocolConfig
        The run's protocol: its folds, seeds, subjects, tasks and label rule are used.

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``task, subject, fold, seed, n_test_trials, majority_trial`` (as in the
        results: the teaching majority scored on the test trials) and :data:`CEILINGS`
        (trial-level accuracies in [0, 1], the units of ``acc_trial``). In a shuffled-label
        control run the label ceiling is NaN (the labels belong to other trials) and the
        oracles learn the shuffled labels, as every method does.

    Raises
    ------
    NoGroundTruth
        The data have no ground truth (real DEAP, custom data).
    GroundTruthError
        The ground truth is unreadable or belongs to other files.
    """
    folder = _truth_folder(spec)
    truth = load_ground_truth(folder)
    truth["trial_1"] = truth["trial"] + 1  # the DEAP loader numbers trials from 1
    ws = _windows(spec, config)
    _check_ratings(truth, ws)
    rows = [_unit_row(ws, truth, unit, config) for unit in plan_units(ws, config)]
    return pd.DataFrame(rows)


def _trials_of(ws: WindowSet, idx: np.ndarray) -> pd.DataFrame:
    """(subject, trial) of the windows ``idx``, one row per trial, with its label row index."""
    keys = pd.DataFrame({"subject": ws.subject[idx], "trial_1": ws.trial[idx], "window": idx})
    return keys.drop_duplicates(["subject", "trial_1"]).reset_index(drop=True)


def _unit_row(ws: WindowSet, truth: pd.DataFrame, unit: Unit, config: ProtocolConfig) -> dict:
    if config.shuffle_labels:
        ws = shuffle_trial_labels(ws, unit.seed)
    mine, fold = _fold_of(ws, unit, config)
    y = mine.labels(unit.task)  # (N,) window labels, constant within a trial
    train_idx = np.concatenate([fold.train, fold.quiz, fold.val])
    sides = {}
    for name, idx in (("train", train_idx), ("test", fold.test)):
        trials = _trials_of(mine, idx)
        sides[name] = (trials.merge(truth, on=["subject", "trial_1"], how="left"), y[trials["window"]])
    (tr, y_tr), (te, y_te) = sides["train"], sides["test"]
    majority = majority_class(y[fold.train])  # as the results: the teaching windows' majority
    row = dict(task=unit.task, subject=unit.subject, fold=unit.fold, seed=unit.seed, n_test_trials=len(te),
               majority_trial=float(np.mean(y_te == majority)))
    row["label_ceiling"] = np.nan if config.shuffle_labels else label_ceiling(
        te[f"latent_{unit.task}"], truth.attrs["rating_noise_sd"], mine.threshold, mine.rule)
    for name in MODALITY_PREFIXES:
        cols = modality_columns(truth, name)
        row[name] = oracle_accuracy(tr[cols].to_numpy(), y_tr, te[cols].to_numpy(), y_te)
    return row


def modality_columns(truth: pd.DataFrame, ceiling: str) -> list[str]:
    """The ground-truth columns the oracle of ``ceiling`` reads.

    Parameters
    ----------
    truth : pandas.DataFrame
        :func:`load_ground_truth` output.
    ceiling : str
        ``eeg_ceiling``, ``eog_ceiling`` or ``eeg_eog_ceiling``.

    Returns
    -------
    list of str
        The columns with the prefixes of :data:`MODALITY_PREFIXES`; the joint oracle leaves out
        ``eog__eeg_path_*``, copies of ``eeg__`` columns it already has.
    """
    cols = [c for c in truth if c.startswith(MODALITY_PREFIXES[ceiling])]
    if ceiling == "eeg_eog_ceiling":
        cols = [c for c in cols if not c.startswith("eog__eeg_path_")]
    return cols


def protocol_from_record(proto: dict) -> ProtocolConfig:
    """The fold-defining part of a run record's ``protocol`` (``config.json``) as a ProtocolConfig.

    Parameters
    ----------
    proto : dict
        ``kdlib.report.run_info(run_dir)["protocol"]``.

    Returns
    -------
    ProtocolConfig
        Protocol, folds, validation and quiz sizes, tasks, subjects, seeds and the shuffled-label
        switch of the run (methods: the majority class only; the folds do not depend on them).
    """
    seeds = proto.get("seeds")
    seeds = [proto.get("seed", 0)] if seeds is None else np.atleast_1d(seeds).tolist()
    known = {k: proto[k] for k in ("protocol", "n_folds", "val_size", "quiz_size", "shuffle_labels") if k in proto}
    return ProtocolConfig(**known, tasks=tuple(proto.get("tasks", ("valence", "arousal"))),
                          subjects=tuple(proto.get("subjects", ())), seeds=tuple(int(x) for x in seeds),
                          methods=("majority",))


def run_ceilings(info: dict) -> pd.DataFrame:
    """:func:`fold_ceilings` of a recorded run.

    Parameters
    ----------
    info : dict
        ``kdlib.report.run_info(run_dir)``: its ``data`` and ``protocol`` records.

    Returns
    -------
    pandas.DataFrame
        As :func:`fold_ceilings`.

    Raises
    ------
    NoGroundTruth, GroundTruthError
        As :func:`fold_ceilings`.
    """
    return fold_ceilings(DataSpec.from_record(info["data"]), protocol_from_record(info["protocol"]))


def ceiling_summary(ceilings: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per task: the majority class and every ceiling, mean and ``level`` t interval over subjects.

    Parameters
    ----------
    ceilings : pandas.DataFrame
        :func:`fold_ceilings` output.
    level : float

    Returns
    -------
    pandas.DataFrame
        One row per task: ``n_subjects``, ``n_seeds`` and, for ``majority_trial`` and every column
        of :data:`CEILINGS`, ``<c>_mean, <c>_ci_low, <c>_ci_high`` (each subject's value: the mean
        over its folds within a seed, then over seeds).
    """
    cols = ["majority_trial"] + [c for c in CEILINGS if c in ceilings]
    rows = []
    for task, part in ceilings.groupby("task", sort=False):
        per_subject = part.groupby(["subject", "seed"])[cols].mean().groupby("subject").mean()
        row = dict(task=task, n_subjects=len(per_subject), n_seeds=int(part["seed"].nunique()))
        for c in cols:
            mean, low, high = stats.t_interval(per_subject[c], level)
            row.update({f"{c}_mean": mean, f"{c}_ci_low": low, f"{c}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


# --- share of the gap ---------------------------------------------------------------------------

def method_ceiling(method: str) -> str:
    """The ceiling that bounds ``method``: its inputs' oracle (EOG students: ``eog_ceiling``).

    Parameters
    ----------
    method : str

    Returns
    -------
    str
        A column of :data:`CEILINGS` (``label_ceiling`` for a method kdlib does not know).
    """
    return _METHOD_CEILING.get(method, "label_ceiling")


def gap_closed(results: pd.DataFrame, ceilings: pd.DataFrame, ceiling: str = "eog_ceiling",
               level: float = 0.95) -> pd.DataFrame:
    """Per task and method, the share of the attainable gap closed: (method − majority) / (ceiling − majority).

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (:func:`kdlib.evaluate.load_results`) with ``acc_trial`` and ``majority_trial``.
    ceilings : pandas.DataFrame
        :func:`fold_ceilings` of the same run.
    ceiling : str
        Which ceiling (a column of :data:`CEILINGS`), or ``"method"``: each method's own
        (:func:`method_ceiling`).
    level : float
        Coverage of the interval.

    Returns
    -------
    pandas.DataFrame
        One row per (task, method): ``ceiling`` (its name), ``n_subjects, n_seeds``, the means over
        subjects of ``acc_trial``, ``majority_trial`` and the ceiling (``ceiling_mean``), and
        ``gap_closed`` with ``ci_low, ci_high, bounded`` (:func:`kdlib.stats.ratio_interval` of the
        per-subject gains ``acc - majority`` over ``ceiling - majority``; every subject's values are
        the mean over its folds within a seed, then over seeds, as in :func:`kdlib.stats.subject_means`).
        Units present in only one of the two tables are left out.

    Raises
    ------
    ValueError
        ``ceiling`` unknown, or the two tables disagree on a unit's majority class (the ceilings were
        computed for other data).
    """
    if ceiling != "method" and ceiling not in CEILINGS:
        raise ValueError(f"ceiling must be one of {CEILINGS} or 'method', got {ceiling!r}")
    keys = ["task", "subject", "fold", "seed"]
    res = stats.with_seed(results)
    merged = res.merge(ceilings.drop(columns=["n_test_trials"]), on=keys, suffixes=("", "_c"))
    if not np.allclose(merged["majority_trial"], merged["majority_trial_c"]):
        raise ValueError("gap_closed: the results and the ceilings disagree on the majority class of some folds "
                         "(ceilings of other data?)")
    rows = []
    for (task, method), part in merged.groupby(["task", "method"], sort=False):
        name = method_ceiling(method) if ceiling == "method" else ceiling
        per_seed = part.groupby(["subject", "seed"])[["acc_trial", "majority_trial", name]].mean()
        per_subject = per_seed.groupby("subject").mean()
        gain, room = per_subject["acc_trial"] - per_subject["majority_trial"], \
            per_subject[name] - per_subject["majority_trial"]
        r = stats.ratio_interval(gain, room, level)
        rows.append(dict(task=task, method=method, ceiling=name, n_subjects=r["n_subjects"],
                         n_seeds=int(part["seed"].nunique()), acc_mean=per_subject["acc_trial"].mean(),
                         majority_mean=per_subject["majority_trial"].mean(), ceiling_mean=per_subject[name].mean(),
                         gap_closed=r["ratio"], ci_low=r["ci_low"], ci_high=r["ci_high"], bounded=r["bounded"]))
    return pd.DataFrame(rows)
