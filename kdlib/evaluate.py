"""The evaluation protocol: subjects x folds x tasks x methods, metrics, statistics.

Introduced in ``notebooks/05_evaluation.ipynb``; ``kdlib reproduce`` runs it headless.

One *unit* of work is one fold of one task (of one subject, for the within-subject protocol).
Inside a unit, in this order and with nothing shared with any other unit::

    split the windows by trial -> teaching / quiz / validation (all three from the training
                                  trials) / test
    fit the per-channel scaler on the teaching windows, apply it to all four
    majority class        : predict the training majority (the floor)
    eeg_only, eog_only, late_fusion, teacher : fit(teach, val), score on test
    scratch, v1, v2, v3   : distil the *teacher of this unit* into a fresh EOG student on the
                            same teaching windows; only v3 reads the quiz (its feedback batches)

So the teacher is retrained in every fold (its soft labels never saw the fold's test trials),
early stopping uses validation trials and variation 3's feedback uses quiz trials, both carved
out of the training trials, and normalisation statistics come from teaching windows only. Every
method of a unit trains on the same teaching windows (``ProtocolConfig.quiz_size`` of the
training trials are held out for every method, also when v3 is not run, so results do not
depend on which methods a run includes): V3 − V2 measures the feedback, not a change of data.

Seeds: a run may hold several seeds (``ProtocolConfig.seeds``); each seed changes the folds, the
initial weights, the batch order and the shuffled-label permutation, and every (task, subject,
fold, seed) is a unit of its own, resumed on its own. Every unit's rows are written to
``<out>/folds/`` atomically as soon as the unit finishes (with ``trainer="batched"`` the folds of
one task x subject x seed train as one stack, :func:`run_batch`, and their files appear together
when it finishes): an interrupted run resumes where it stopped and never repeats a finished unit.

Metrics: accuracy and macro F1 at window level and at trial level (the trial's prediction is the
mean of its windows' probabilities), each beside the majority-class accuracy of the same test set.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from . import paths
from .data.splits import (Fold, check_no_trial_leakage, fold_windows, leaky_window_split, leave_one_subject_out,
                          trial_kfold)
from .data.windows import TASKS, PrepConfig, WindowSet, concat_windows, majority_class
from .io import atomic_write
from .registry import BASELINE_METHODS, METHODS, PROTOCOLS, STUDENT_METHODS

__all__ = [
    "BASELINE_METHODS",
    "STUDENT_METHODS",
    "METHODS",
    "PAPER_RESULTS",
    "DataSpec",
    "ProtocolConfig",
    "Unit",
    "scores",
    "trial_votes",
    "shuffle_trial_labels",
    "label_permutation",
    "plan_units",
    "run_unit",
    "batch_key",
    "plan_batches",
    "resolve_trainer",
    "run_batch",
    "run_protocol",
    "load_results",
    "summarize",
    "paired_tests",
    "chance_interval",
]

# BASELINE_METHODS, STUDENT_METHODS and METHODS come from kdlib.registry (the command line reads it too).
#: The paper's reported accuracies of the full method (EOG student, Variation 3), in %.
PAPER_RESULTS = {("deap", "valence"): 70.38, ("deap", "arousal"): 60.41,
                 ("bjtu", "valence"): 61.31, ("bjtu", "arousal"): 60.31}
_PROTOCOLS = tuple(PROTOCOLS)  # kdlib.registry.PROTOCOLS: names and one-line descriptions


@dataclass(frozen=True)
class DataSpec:
    """Where a worker finds the windows (data travel as a description, not as arrays).

    Attributes
    ----------
    dataset : {'synthetic', 'deap', 'custom'}
    data_dir : str
        Folder of the subject files ('' = the dataset's default).
    manifest : str
        Manifest file for ``dataset='custom'``.
    prep : PrepConfig
    cache_dir : str
        Cache folder ('' = :func:`kdlib.paths.cache_dir`).
    """

    dataset: str = "synthetic"
    data_dir: str = ""
    manifest: str = ""
    prep: PrepConfig = PrepConfig()
    cache_dir: str = ""

    @classmethod
    def from_record(cls, data: dict) -> DataSpec:
        """The spec a run folder's ``config.json`` records (its ``"data"`` part; lists back to tuples).

        Parameters
        ----------
        data : dict
            ``kdlib.report.run_info(run_dir)["data"]``.

        Returns
        -------
        DataSpec
        """
        prep = PrepConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["prep"].items()})
        return cls(**{**data, "prep": prep})

    def load(self, subjects=None) -> WindowSet:
        """Windows of ``subjects`` (all when None), through the per-subject cache."""
        from .data import cache, dataset_dir

        cdir = self.cache_dir or None
        if self.dataset == "custom":
            from .data.custom import load_manifest, prepare_custom

            return prepare_custom(load_manifest(self.manifest), self.prep, subjects=subjects, cache_dir=cdir,
                                  progress=False)
        folder = dataset_dir(self.dataset, self.data_dir or None)
        return cache.prepare_dataset(folder, self.prep, subjects=subjects, cache_dir=cdir, progress=False)

    def fingerprint(self, subjects=None) -> dict[str, str]:
        """What the data this spec reads are, subject by subject.

        For DEAP-format folders the name, size and whole content of every subject file
        (:func:`kdlib.data.cache.content_fingerprint`: identical bytes rewritten are the same
        data); for a custom data set the cache's file fingerprints (name, size, modification
        time and the first and last 64 KiB of every source file) with its settings and trial rows. A run folder records it in ``config.json``:
        rewritten files, or subjects added or removed, show as a change.

        Parameters
        ----------
        subjects : list of str, optional
            The run's subjects (default: every subject of the data set).

        Returns
        -------
        dict
            ``{subject: fingerprint}``.
        """
        from .data import cache, dataset_dir

        if self.dataset == "custom":
            from .data.custom import load_manifest, subject_fingerprints

            return subject_fingerprints(load_manifest(self.manifest), subjects)
        return cache.dataset_fingerprints(dataset_dir(self.dataset, self.data_dir or None), subjects)


@dataclass(frozen=True)
class ProtocolConfig:
    """Everything that defines a reproduction run (stored as ``config.json`` beside the results)."""

    protocol: Literal["trial_kfold", "loso", "leaky_window"] = "trial_kfold"  # leaky: demonstration only
    n_folds: int = 5  # trial-level folds per subject (trial_kfold, leaky_window)
    val_size: float = 0.2  # share of each fold's training trials kept for validation
    quiz_size: float = 0.15  # share of each fold's training trials kept as the quiz (v3's feedback batches)
    tasks: tuple[str, ...] = TASKS  # binary tasks, each trained separately
    methods: tuple[str, ...] = METHODS  # what to train in every fold
    subjects: tuple[str, ...] = ()  # subset of subjects ('' = all)
    seeds: tuple[int, ...] = (0,)  # each seed: folds, initialisation, batch order, label shuffle
    model_preset: Literal["smoke", "default", "paper"] = "default"  # kdlib.models presets
    train_preset: Literal["smoke", "default", "paper"] = "default"  # kdlib.train presets
    epochs: int | None = None  # override the preset's epoch budget
    shuffle_labels: bool = False  # control run: trial labels permuted within subject (must give chance)
    save_checkpoints: bool = False  # write every fold's model state dicts under <out>/checkpoints/
    trainer: Literal["sequential", "batched"] = "sequential"  # batched: a subject's folds as one stack (kdlib.batched)

    def __post_init__(self):
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose from {_PROTOCOLS}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if not self.methods:
            raise ValueError("no methods to run")
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(self.tasks)}")
        for name in ("tasks", "methods", "subjects", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: each may be given once, got {list(values)}")
        if not self.seeds or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0
                                 for s in self.seeds):
            raise ValueError(f"seeds must be one or more integers >= 0, got {list(self.seeds)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if self.protocol == "loso" and self.subjects and len(self.subjects) < 2:
            raise ValueError(f"the loso protocol needs at least 2 subjects, got {list(self.subjects)}")
        for name in ("val_size", "quiz_size"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if self.val_size + self.quiz_size >= 1:
            raise ValueError(f"val_size + quiz_size must be < 1, got {self.val_size} + {self.quiz_size}")
        if self.trainer not in ("sequential", "batched"):
            raise ValueError(f"trainer must be 'sequential' or 'batched', got {self.trainer!r}")
        if "v3" in self.methods and self.quiz_size <= 0:
            raise ValueError("v3 needs quiz trials for its feedback batches: quiz_size must be > 0")

    def to_dict(self) -> dict:
        """The fields as JSON-ready plain data (tuples become lists), as ``config.json`` records them."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class Unit:
    """One fold of one task under one seed: the unit of work, of parallelism and of resuming."""

    task: str
    fold: int
    subject: str  # the subject (trial_kfold, leaky_window) or the test subject (loso)
    seed: int = 0

    @property
    def key(self) -> str:
        """``valence__s01__fold0__seed0``: the unit's name in file names and checkpoint folders."""
        return f"{self.task}__{self.subject}__fold{self.fold}__seed{self.seed}"


# --- metrics ----------------------------------------------------------------------------------

def trial_votes(prob: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trial-level vote: each trial's class is the argmax of its windows' mean probability.

    Parameters
    ----------
    prob : ndarray, shape (N, C)
        Class probabilities of the windows.
    groups : ndarray, shape (N,)
        Trial code of every window.

    Returns
    -------
    trials : ndarray, shape (n_trials,)
        The trial codes, sorted (``np.unique`` order).
    trial_pred : ndarray, shape (n_trials,)
        The voted class of each trial.
    inverse : ndarray, shape (N,)
        Each window's index into ``trials``.
    """
    trials, inverse = np.unique(groups, return_inverse=True)
    trial_prob = np.zeros((len(trials), prob.shape[1]))
    np.add.at(trial_prob, inverse, prob)  # sum of window probabilities per trial (mean: same argmax)
    return trials, trial_prob.argmax(1), inverse


def scores(prob: np.ndarray, y: np.ndarray, groups: np.ndarray, train_majority: int) -> dict:
    """Window- and trial-level accuracy and macro F1, with the majority-class accuracy beside them.

    Parameters
    ----------
    prob : ndarray, shape (N, 2)
        Class probabilities of the test windows.
    y : ndarray, shape (N,)
        True labels (constant within a trial).
    groups : ndarray, shape (N,)
        Trial code of every window (:attr:`WindowSet.groups`).
    train_majority : int
        The majority class of the *training* labels: the floor predicts it everywhere.

    Returns
    -------
    dict
        ``acc_window, f1_window, acc_trial, f1_trial, majority_window, majority_trial, n_windows,
        n_trials`` and the trial-level confusion counts ``trial_tn, trial_fp, trial_fn, trial_tp``.
    """
    pred = prob.argmax(1)
    trials, trial_pred, inverse = trial_votes(prob, groups)
    trial_y = np.zeros(len(trials), dtype=y.dtype)
    trial_y[inverse] = y
    f1 = lambda t, p: f1_score(t, p, average="macro", labels=[0, 1], zero_division=0)  # noqa: E731
    (tn, fp), (fn, tp) = confusion_matrix(trial_y, trial_pred, labels=[0, 1])
    return dict(acc_window=accuracy_score(y, pred), f1_window=f1(y, pred),
                acc_trial=accuracy_score(trial_y, trial_pred), f1_trial=f1(trial_y, trial_pred),
                majority_window=float(np.mean(y == train_majority)),
                majority_trial=float(np.mean(trial_y == train_majority)),
                n_windows=len(y), n_trials=len(trials), trial_tn=tn, trial_fp=fp, trial_fn=fn, trial_tp=tp)


def chance_interval(n_trials: int, p: float = 0.5, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of the accuracy of guessing on ``n_trials`` independent
    trials (binomial, :func:`scipy.stats.binom.interval`): what "at chance" means for a test set.

    Parameters
    ----------
    n_trials : int
        Test trials (independent guesses).
    p : float
        Probability that one guess is right (0.5: a coin; the majority share for "always the
        majority class" is not binomial chance and is reported beside it instead).
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    (float, float)
        Lower and upper accuracy, multiples of ``1 / n_trials``.
    """
    from scipy.stats import binom

    lo, hi = binom.interval(level, n_trials, p)
    return lo / n_trials, hi / n_trials


# --- data ------------------------------------------------------------------------------------

def label_permutation(seed: int, subject: str, n_trials: int) -> np.ndarray:
    """The shuffled-label control's permutation of one subject's trials.

    It depends on the seed and the subject only (``numpy.random.SeedSequence([seed, crc32(subject)])``),
    not on which other subjects are loaded or in which protocol: a one-subject load and an
    all-subject load permute a subject alike, and two subjects never share a permutation by
    construction. (One generator for everyone would give every subject the *same* permutation
    when each load holds one subject; DEAP's trials are in video order and subjects rate a
    video alike, so the shuffled labels would then agree with the true ones equally often in
    every subject, and the control would be off chance by the same amount everywhere.)

    Parameters
    ----------
    seed : int
    subject : str
    n_trials : int

    Returns
    -------
    ndarray of int, shape (n_trials,)
    """
    import zlib

    entropy = [int(seed), zlib.crc32(str(subject).encode("utf-8"))]
    return np.random.default_rng(np.random.SeedSequence(entropy)).permutation(n_trials)


def shuffle_trial_labels(ws: WindowSet, seed: int) -> WindowSet:
    """The control condition: ratings permuted across the trials of each subject.

    Windows of one trial keep one (someone else's) rating, so the labels stay trial-consistent
    but become independent of the signals: every method must then score at chance. Each
    subject's permutation is :func:`label_permutation` of ``(seed, subject)``.

    Parameters
    ----------
    ws : WindowSet
    seed : int

    Returns
    -------
    WindowSet
        ``ws`` with permuted ``ratings`` (signals untouched).
    """
    ratings = ws.ratings.copy()
    for subject in ws.subjects():
        mine = np.flatnonzero(ws.subject == subject)
        trials, first, inverse = np.unique(ws.trial[mine], return_index=True, return_inverse=True)
        perm = label_permutation(seed, subject, len(trials))
        ratings[mine] = ws.ratings[mine][first][perm][inverse]
    return replace(ws, ratings=ratings)


def plan_units(ws: WindowSet, config: ProtocolConfig) -> list[Unit]:
    """Every (task, fold, subject, seed) unit of the run, in a fixed order (seed outermost, so
    that an interrupted run has finished whole seeds first).

    Parameters
    ----------
    ws : WindowSet
        The run's windows (their subjects).
    config : ProtocolConfig

    Returns
    -------
    list of Unit
    """
    subjects = ws.subjects()
    units = []
    for seed in config.seeds:
        for task in config.tasks:
            if config.protocol == "loso":
                units += [Unit(task, k, s, seed) for k, s in enumerate(subjects)]
            else:
                units += [Unit(task, k, s, seed) for s in subjects for k in range(config.n_folds)]
    return units


def _fold_of(ws: WindowSet, unit: Unit, config: ProtocolConfig) -> tuple[WindowSet, Fold]:
    """The windows a unit works on and its fold (recomputed deterministically in the worker)."""
    sizes = dict(val_size=config.val_size, quiz_size=config.quiz_size, seed=unit.seed)
    if config.protocol == "loso":
        folds = leave_one_subject_out(ws, unit.task, **sizes)
        fold = next(f for f in folds if f.name == f"loso/{unit.subject}")
        check_no_trial_leakage(ws, fold, by="subject")
        return ws, fold
    mine = ws.subset(np.flatnonzero(ws.subject == unit.subject))
    if config.protocol == "leaky_window":
        return mine, leaky_window_split(mine, unit.task, config.n_folds, **sizes)[unit.fold]
    fold = trial_kfold(mine, unit.task, config.n_folds, **sizes)[unit.fold]
    check_no_trial_leakage(mine, fold)
    return mine, fold


# --- one unit --------------------------------------------------------------------------------

def _presets(config: ProtocolConfig, ws: WindowSet, seed: int = 0, device: str = "auto", amp: bool = False):
    from . import models, train

    model_cfg = {"smoke": models.SMOKE, "default": models.DEFAULT, "paper": models.PAPER}[config.model_preset]
    train_cfg = {"smoke": train.SMOKE, "default": train.DEFAULT, "paper": train.PAPER}[config.train_preset]
    train_cfg = replace(train_cfg, seed=seed, progress=False, device=device, amp=amp)
    if config.epochs is not None:
        train_cfg = replace(train_cfg, epochs=config.epochs)
    return model_cfg.for_windows(ws), train_cfg


def run_unit(spec: DataSpec, unit: Unit, config: ProtocolConfig, checkpoint_dir: str | None = None,
             num_threads: int | None = 1, device: str = "auto", amp: bool = False) -> pd.DataFrame:
    """Train and score every method of ``config`` on one unit; one row per method.

    Parameters
    ----------
    spec : DataSpec
        Where the windows are (loaded here, in the worker, from the cache).
    unit : Unit
    config : ProtocolConfig
    checkpoint_dir : str, optional
        Save each model's state dict there (``config.save_checkpoints``).
    num_threads : int, optional
        torch threads in this worker (1: parallel units do not fight over cores).
    device : str
        ``TrainConfig.device`` ("auto", "cpu", "cuda", ...).
    amp : bool
        ``TrainConfig.amp`` (mixed precision on CUDA; ignored on the CPU).
    """
    _set_threads(num_threads)
    data = _UnitData.load(spec, unit, config, _load_for([unit], spec, config))
    model_cfg, train_cfg = _presets(config, data.ws, unit.seed, device, amp)
    rows, teacher = [], None
    for method in config.methods:
        t0 = time.perf_counter()
        prob, extra, model = _train_method(method, data.train, data.val, data.test, unit.task, model_cfg, train_cfg,
                                           teacher, data.quiz)
        if method == "teacher":
            teacher = model
        _save_model(checkpoint_dir, unit, method, model)
        rows.append(data.row(method, prob, time.perf_counter() - t0, extra))
    return pd.DataFrame(rows)


def _set_threads(num_threads: int | None) -> None:
    import torch

    if num_threads is not None:
        torch.set_num_threads(num_threads)


def _load_for(units: list[Unit], spec: DataSpec, config: ProtocolConfig) -> WindowSet:
    """The windows the units need: every subject for loso, else the units' one subject."""
    if config.protocol == "loso":
        return spec.load(list(config.subjects) or None)
    return spec.load(sorted({u.subject for u in units}))


def _save_model(checkpoint_dir: str | None, unit: Unit, method: str, model) -> None:
    if checkpoint_dir and model is not None:
        from .train import save_checkpoint

        save_checkpoint(model, Path(checkpoint_dir) / unit.key / f"{method}.pt", method=method, unit=unit.key)


@dataclass
class _UnitData:
    """One unit's four sides (normalised on its teaching windows) and what its rows record."""

    unit: Unit
    ws: WindowSet
    train: WindowSet
    quiz: WindowSet
    val: WindowSet
    test: WindowSet

    @classmethod
    def load(cls, spec: DataSpec, unit: Unit, config: ProtocolConfig, ws: WindowSet) -> _UnitData:
        if config.shuffle_labels:  # per subject: the same whichever subjects are loaded
            ws = shuffle_trial_labels(ws, unit.seed)
        ws, fold = _fold_of(ws, unit, config)
        sides = fold_windows(ws, fold, by={"loso": "subject", "trial_kfold": "trial"}.get(config.protocol))
        return cls(unit, ws, *(sides[side] for side in Fold.SIDES))

    def row(self, method: str, prob: np.ndarray, seconds: float, extra: dict) -> dict:
        """The results row of ``method`` from its test probabilities ``(N, 2)``."""
        u = self.unit
        majority = majority_class(self.train.labels(u.task))
        sizes = dict(n_teach_trials=len(np.unique(self.train.groups)), n_quiz_trials=len(np.unique(self.quiz.groups)),
                     n_val_trials=len(np.unique(self.val.groups)))
        return dict(task=u.task, subject=u.subject, fold=u.fold, seed=u.seed, method=method,
                    **scores(prob, self.test.labels(u.task), self.test.groups, majority), seconds=seconds, **sizes,
                    **extra)


def _train_method(method, train, val, test, task, model_cfg, train_cfg, teacher, quiz=None):
    """-> (test probabilities (N, 2), extra columns, trained model or None).

    Extra columns: ``best_epoch``; for the students the shares of the loss terms at the best
    epoch; for v3 the number of feedback steps and how far the teacher's outputs moved.
    """
    from .models import build_model
    from .repro import seed_everything
    from .train import fit, predict

    if method == "majority":
        majority = majority_class(train.labels(task))
        return np.eye(2)[np.full(len(test), majority)], {}, None
    if method in BASELINE_METHODS:
        seed_everything(train_cfg.seed)  # identical initial weights for a given seed
        result = fit(build_model(method, model_cfg), train, val, task, train_cfg)
        return predict(result.model, test), dict(best_epoch=result.best_epoch), result.model
    if teacher is None:
        teacher = _train_method("teacher", train, val, test, task, model_cfg, train_cfg, None)[2]
    from .distill import PRESETS, distill

    config = PRESETS[method]
    result = distill(teacher, train, val, task, config, train_cfg, model_config=model_cfg,
                     quiz=quiz if config.feedback == "meta" else None)  # only v3's feedback reads the quiz
    return predict(result.student, test), dict(best_epoch=result.best_epoch, **result.summary()), result.student


# --- a batch of units: one subject x task x seed, its folds trained as one stack -----------------

def batch_key(unit: Unit, config: ProtocolConfig) -> tuple:
    """Which units train together with ``config.trainer == "batched"``: the folds of one
    (task, subject, seed); under loso every unit is its own batch (a fold per test subject).

    Parameters
    ----------
    unit : Unit
    config : ProtocolConfig
        Only ``config.protocol`` is read.

    Returns
    -------
    tuple
        ``(task, subject, seed)``, with ``fold`` appended under ``"loso"``.
    """
    if config.protocol == "loso":
        return (unit.task, unit.subject, unit.seed, unit.fold)
    return (unit.task, unit.subject, unit.seed)


def resolve_trainer(trainer: str, device: str = "auto") -> str:
    """``"auto"``: the batched trainer on CUDA, the sequential one elsewhere; otherwise ``trainer``.

    Why: on the kit's 2-core CPU the stacked ensemble does not train faster per core than one
    model at a time (``benchmarks/results/bench_batched.md``: these models' steps are dominated by
    memory-bound convolutions, batch norm and elementwise work, which ``vmap`` makes no cheaper),
    while a GPU runs a stack of small models in about the time of one.

    Parameters
    ----------
    trainer : {'auto', 'batched', 'sequential'}
    device : str
        As for :func:`kdlib.repro.choose_device` (must be available).

    Returns
    -------
    str
        ``"batched"`` or ``"sequential"``.
    """
    if trainer != "auto":
        return trainer
    from .repro import choose_device

    return "batched" if choose_device(device).type == "cuda" else "sequential"


def plan_batches(units: list[Unit], config: ProtocolConfig) -> list[list[Unit]]:
    """``units`` grouped by :func:`batch_key`, in the order of their first unit (one unit per
    batch with the sequential trainer).

    Parameters
    ----------
    units : list of Unit
        The units to run, in the order they should run.
    config : ProtocolConfig
        ``config.trainer`` (``"batched"`` groups; anything else gives one unit per batch) and
        ``config.protocol`` (for :func:`batch_key`).

    Returns
    -------
    list of list of Unit
        Every unit exactly once; within a batch, in the order of ``units``.
    """
    if config.trainer != "batched":
        return [[u] for u in units]
    groups: dict[tuple, list[Unit]] = {}
    for u in units:
        groups.setdefault(batch_key(u, config), []).append(u)
    return list(groups.values())


def run_batch(spec: DataSpec, units: list[Unit], config: ProtocolConfig, checkpoint_dir: str | None = None,
              num_threads: int | None = 1, device: str = "auto", amp: bool = False) -> list[pd.DataFrame]:
    """:func:`run_unit` for units of one :func:`batch_key`, each method's folds trained as one stack.

    Every member keeps its own fold (its own teaching, quiz, validation and test windows, scaler
    and teacher); only the arithmetic is shared (:mod:`kdlib.batched`). Variation 3 (feedback)
    and the majority floor run member by member.

    Parameters
    ----------
    spec : DataSpec
    units : list of Unit
        One task, subject and seed (:func:`plan_batches`).
    config : ProtocolConfig
    checkpoint_dir, num_threads, device, amp
        As for :func:`run_unit`.

    Returns
    -------
    list of pandas.DataFrame
        One table per unit, in order, with :func:`run_unit`'s columns; ``seconds`` is each
        method's wall time for the batch divided by the number of units.
    """
    if len({batch_key(u, config) for u in units}) != 1:
        raise ValueError(f"run_batch: units of different batches: {[u.key for u in units]}")
    _set_threads(num_threads)
    ws = _load_for(units, spec, config)
    members = [_UnitData.load(spec, u, config, ws) for u in units]
    model_cfg, train_cfg = _presets(config, members[0].ws, units[0].seed, device, amp)
    rows: list[list[dict]] = [[] for _ in units]
    teachers = None
    for method in config.methods:
        t0 = time.perf_counter()
        outs = _train_batched(method, members, model_cfg, train_cfg, teachers)
        if method == "teacher":
            teachers = [model for _, _, model in outs]
        seconds = (time.perf_counter() - t0) / len(units)
        for k, (prob, extra, model) in enumerate(outs):
            _save_model(checkpoint_dir, units[k], method, model)
            rows[k].append(members[k].row(method, prob, seconds, extra))
    return [pd.DataFrame(r) for r in rows]


def _train_batched(method, members: list[_UnitData], model_cfg, train_cfg, teachers):
    """:func:`_train_method` for every member: ``[(test probabilities, extra columns, model)]``."""
    from .batched import group_by_size
    from .train import predict

    task = members[0].unit.task
    if method in ("majority", "v3"):  # nothing to batch / the feedback loop stays sequential
        if method == "v3" and teachers is None:
            teachers = [m for _, _, m in _train_batched("teacher", members, model_cfg, train_cfg, None)]
        return [_train_method(method, d.train, d.val, d.test, task, model_cfg, train_cfg,
                              teachers[k] if teachers is not None else None, d.quiz) for k, d in enumerate(members)]
    if method in STUDENT_METHODS and teachers is None:
        teachers = [m for _, _, m in _train_batched("teacher", members, model_cfg, train_cfg, None)]
    outs = [None] * len(members)
    for group in group_by_size([d.train for d in members]):
        mine = [members[k] for k in group]
        if method in BASELINE_METHODS:
            fitted = _fit_group(method, mine, model_cfg, train_cfg)
            done = [(predict(r.model, d.test), dict(best_epoch=r.best_epoch), r.model) for r, d in zip(fitted, mine)]
        else:
            from .distill.distill import PRESETS, distill_batched

            results = distill_batched([teachers[k] for k in group], [d.train for d in mine], [d.val for d in mine],
                                      task, PRESETS[method], train_cfg, model_config=model_cfg)
            done = [(predict(r.student, d.test), dict(best_epoch=r.best_epoch, **r.summary()), r.student)
                    for r, d in zip(results, mine)]
        for k, out in zip(group, done):
            outs[k] = out
    return outs


def _fit_group(method: str, members: list[_UnitData], model_cfg, train_cfg):
    """A baseline (or the teacher) for every member, each initialised as :func:`_train_method` does."""
    from .batched import fit_batched
    from .models import build_model
    from .repro import seed_everything

    models = []
    for _ in members:
        seed_everything(train_cfg.seed)  # identical initial weights for a given seed, as in run_unit
        models.append(build_model(method, model_cfg))
    return fit_batched(models, [d.train for d in members], [d.val for d in members], members[0].unit.task, train_cfg)


# --- the whole run ---------------------------------------------------------------------------

def _check_run_folder(out: Path, config: ProtocolConfig, spec: DataSpec) -> None:
    """Write ``out/config.json``, or make sure the run it records has these settings and data.

    The record holds the protocol, the data description and the data's fingerprint
    (:meth:`DataSpec.fingerprint`). A folder with finished folds (``folds/*.csv``) refuses, in
    one line naming the folder and what differs: other settings, changed data, a corrupt
    ``config.json``, or folds without one. A folder without finished folds (a start that failed
    or was stopped early) takes the new record: nothing would be lost.
    """
    record = {"protocol": config.to_dict(), "data": json.loads(json.dumps(asdict(spec))),
              "fingerprint": spec.fingerprint(list(config.subjects) or None)}
    cfg_file = out / "config.json"
    n_done = sum(1 for _ in (out / "folds").glob("*.csv"))
    if n_done:
        change = _record_change(_read_record(cfg_file, n_done), record)
        if change:
            raise ValueError(f"{out}: {change}; its {n_done} finished fold(s) are kept: choose another --out, "
                             "or delete the folder to start again")
        return
    if cfg_file.is_file() and _read_record(cfg_file, 0) == record:
        return
    from .repro import environment_report

    with atomic_write(cfg_file, "w") as fh:
        json.dump(record, fh, indent=2)
    with atomic_write(out / "environment.json", "w") as fh:
        json.dump(environment_report(), fh, indent=2, default=str)


def _read_record(cfg_file: Path, n_done: int):
    """The stored record; None when a folder without finished folds has none (or an unreadable one)."""
    if not cfg_file.is_file():
        if n_done:
            raise ValueError(f"{cfg_file.parent}: holds {n_done} finished fold(s) but no config.json, so "
                             "nothing says which settings and data made them; choose another --out, or delete "
                             "the folder to start again")
        return None
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        if not n_done:
            return None  # nothing depends on it: it is replaced
        raise ValueError(f"{cfg_file}: not a readable run record ({type(exc).__name__}: {exc}); it belongs to "
                         f"{n_done} finished fold(s): restore it, or choose another --out") from None


def _record_change(old, new: dict) -> str:
    """What differs between a stored run record and this run's, in words ('' when nothing)."""
    if not isinstance(old, dict):
        return "its config.json is not a run record"
    for part, what in (("protocol", "settings"), ("data", "data description")):
        if old.get(part) != new[part]:
            before, after = old.get(part) or {}, new[part]
            keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)) \
                if isinstance(before, dict) else [part]
            return f"holds a run with another configuration ({what}: {', '.join(map(str, keys[:6]))} differ)"
    before, after = old.get("fingerprint"), new["fingerprint"]
    if before == after:
        return ""
    if not isinstance(before, dict):
        return "holds a run whose config.json records no data fingerprint (an older kdlib)"
    changed = [s for s in after if s in before and before[s] != after[s]]
    added, removed = [s for s in after if s not in before], [s for s in before if s not in after]
    words = [f"{label} {', '.join(ids)}" for label, ids in (("rewritten:", changed), ("added:", added),
                                                           ("removed:", removed)) if ids]
    return f"the data changed since the run started ({'; '.join(words)})"


def _make_run_folder(out: Path) -> None:
    """Create the run folder; remove temporaries that killed writers left in it."""
    from .io import remove_stale_temporaries

    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; choose another --out")
    (out / "folds").mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "folds"):
        remove_stale_temporaries(folder)


def _unit_file(out: Path, unit: Unit) -> Path:
    return out / "folds" / f"{unit.key}.csv"


def _run_batch_or_unit(spec, batch, config, ckpt, device, amp) -> list[pd.DataFrame]:
    """What a worker runs: :func:`run_batch` (batched trainer) or :func:`run_unit` on one unit."""
    if config.trainer == "batched":
        return run_batch(spec, batch, config, ckpt, device=device, amp=amp)
    return [run_unit(spec, u, config, ckpt, device=device, amp=amp) for u in batch]


def run_protocol(spec: DataSpec, config: ProtocolConfig, out: str | os.PathLike | None = None,
                 n_jobs: int = 1, backend: Literal["loky", "dask", "sequential"] = "loky",
                 scheduler: str | None = None, progress: bool = True, device: str = "auto",
                 amp: bool = False) -> pd.DataFrame:
    """Run (or resume) the whole protocol; return one row per (task, subject, fold, method).

    Parameters
    ----------
    spec : DataSpec
        The data set; workers load their subject's windows from the cache.
    config : ProtocolConfig
    out : path-like, optional
        Run folder (default ``results/run``): ``config.json``, ``environment.json``,
        ``folds/<unit>.csv`` (one per finished unit, written atomically), ``results.csv``.
    n_jobs : int
        Units run in parallel (joblib processes, one torch thread each).
    backend : {'loky', 'dask', 'sequential'}
        ``dask`` sends the units to a ``dask.distributed`` cluster at ``scheduler``.
    scheduler : str, optional
        Address of the Dask scheduler (``tcp://host:8786``), or a ``distributed.Client``.
    progress : bool
        tqdm bar over units, with an ETA.
    device : str
        Where the models train: ``"auto"`` (CUDA if available, else the CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:N"``; an unavailable device is one error before anything runs.
    amp : bool
        Mixed precision (bfloat16 autocast) on CUDA with the batched trainer; ignored on the
        CPU, whose results stay those of float32.

    Notes
    -----
    Resuming: units whose file exists are not run again; the folder's ``config.json`` must
    match, so results of different settings never mix. With ``config.trainer == "batched"`` the
    unfinished units of one (task, subject, seed) train as one batch (:func:`run_batch`) and
    their files are written together when it finishes: an interrupted batch leaves no file and
    is retrained whole, so a resumed run has the same rows as an uninterrupted one. (A batch
    whose units were partly finished, e.g. files deleted by hand, trains the rest as a smaller
    stack: the same to the float-rounding tolerance of :mod:`kdlib.batched`.)
    """
    from .repro import choose_device

    choose_device(device)  # an unavailable device fails here, in one line, before any work
    from joblib import Parallel, delayed, parallel_config
    from tqdm.auto import tqdm

    out = paths.resolve(out, paths.results_dir() / "run")
    _make_run_folder(out)
    _check_run_folder(out, config, spec)  # before any preparation: refuses changed data at once
    subjects = list(config.subjects) or None
    ws = spec.load(subjects)  # fills the cache once, in this process, and fixes the subject list
    units = plan_units(ws, config)
    todo = [u for u in units if not _unit_file(out, u).is_file()]
    ckpt = str(out / "checkpoints") if config.save_checkpoints else None
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc="reproduce", unit="fold", disable=not progress)
    batches = plan_batches(todo, config)
    jobs = (delayed(_run_batch_or_unit)(spec, b, config, ckpt, device, amp) for b in batches)
    with _backend(backend, scheduler, n_jobs) as kwargs:
        with parallel_config(**kwargs):
            for batch, tables in zip(batches, Parallel(return_as="generator")(jobs)) if batches else ():
                for unit, rows in zip(batch, tables):  # a batch's files appear when the whole batch is done
                    with atomic_write(_unit_file(out, unit), "w") as fh:
                        rows.to_csv(fh, index=False)
                bar.update(len(batch))
    bar.close()
    results = load_results(out)
    with atomic_write(out / "results.csv", "w") as fh:
        results.to_csv(fh, index=False)
    return results


DASK_CONNECT_S = 10.0  #: how long a run waits for the Dask scheduler to answer


class _backend:
    """Context: joblib settings for the chosen backend (a Dask client lives as long as the run)."""

    def __init__(self, backend: str, scheduler, n_jobs: int):
        if backend not in ("loky", "dask", "sequential"):
            raise ValueError(f"unknown backend {backend!r}; choose loky, dask or sequential")
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or (n_jobs < 1 and n_jobs != -1):
            raise ValueError(f"n_jobs must be a whole number >= 1 (or -1: every core), got {n_jobs!r}")
        self.backend, self.scheduler, self.n_jobs, self.client = backend, scheduler, n_jobs, None

    def __enter__(self) -> dict:
        if self.backend == "dask":
            try:
                from distributed import Client
            except ImportError:
                raise ImportError("the dask backend needs dask.distributed: pip install 'kdlib[cluster]'") from None
            if self.scheduler is None:
                raise ValueError("the dask backend needs a scheduler address (--scheduler tcp://host:8786)")
            self.client = self.scheduler if isinstance(self.scheduler, Client) else self._connect(Client)
            return dict(backend="dask", n_jobs=-1)
        if self.backend == "sequential" or self.n_jobs == 1:
            return dict(backend="sequential", n_jobs=1)
        return dict(backend="loky", n_jobs=self.n_jobs, inner_max_num_threads=1)

    def _connect(self, client_class):
        """A client of the scheduler, or one line within :data:`DASK_CONNECT_S` seconds."""
        try:
            return client_class(self.scheduler, timeout=DASK_CONNECT_S)
        except (OSError, ValueError, TypeError) as exc:
            raise ConnectionError(f"Dask scheduler {self.scheduler!r}: not reachable within {DASK_CONNECT_S:g} s "
                                  f"({type(exc).__name__}: {exc}); is it running, and is the address right?") from None

    def __exit__(self, *exc):
        if self.client is not None and self.client is not self.scheduler:
            self.client.close()
        return False


def load_results(out: str | os.PathLike) -> pd.DataFrame:
    """All finished units of a run folder, as one table in a stable order."""
    files = sorted((Path(out) / "folds").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{out}: no finished folds (folds/*.csv)")
    table = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    order = {m: i for i, m in enumerate(METHODS)}
    keys = ["task", "subject", "fold"] + (["seed"] if "seed" in table else [])
    table = table.assign(_m=table["method"].map(order)).sort_values(keys + ["_m"])
    return table.drop(columns="_m").reset_index(drop=True)


# --- aggregates and statistics ----------------------------------------------------------------
# The arithmetic lives in kdlib.stats; these two keep their names and columns for callers.

def summarize(results: pd.DataFrame, metrics=("acc_trial", "f1_trial", "acc_window", "f1_window")):
    """Per-subject means (folds within a seed, then seeds), then statistics over subjects.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (:func:`run_protocol`, :func:`load_results`); without a ``seed``
        column it is one seed.
    metrics : sequence of str
        Metric columns to aggregate.

    Returns
    -------
    (per_subject, overall) : tuple of pandas.DataFrame
        ``per_subject``: one row per (task, method, subject), see
        :func:`kdlib.stats.subject_means` (with ``n_seeds``, ``n_trials`` and the pooled
        ``f1_trial_pooled`` where the table has them); ``overall``: one row per (task, method)
        with ``<metric>_mean`` and ``<metric>_sd`` (SD across subjects), ``<metric>_ci_low`` /
        ``_ci_high`` (95 % t interval over subjects), ``<metric>_seed_sd`` (seed-to-seed
        spread), the majority-class accuracy beside them, ``n_subjects`` and ``n_seeds``
        (:func:`kdlib.stats.method_summary`).
    """
    from . import stats

    per_subject, _ = stats.subject_means(results, metrics)
    return per_subject, stats.method_summary(results, metrics)


def paired_tests(results: pd.DataFrame, reference: str = "v3", metric: str = "acc_trial") -> pd.DataFrame:
    """``reference`` against every other method, paired across subjects, per task.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table; seeds are averaged within each subject first.
    reference : str
        The method every other one is compared with (``reference − method``).
    metric : str
        The metric column.

    Returns
    -------
    pandas.DataFrame
        One row per (task, method): ``task, reference, method, metric, n_subjects, mean_diff,
        t, p_t, wilcoxon_W, p_wilcoxon, cohen_dz`` and ``ci_low, ci_high`` (95 % t interval of
        the mean difference), ``p_holm`` (Holm across the methods of a task), ``n_seeds``,
        ``seed_sd`` and ``inside_noise``. Paired t-test (:func:`scipy.stats.ttest_rel`),
        Wilcoxon signed-rank (:func:`scipy.stats.wilcoxon`, NaN with fewer than 6 subjects or
        all differences zero) and Cohen's d_z (mean difference / SD of the differences). t, its
        p-value and d_z are NaN when the differences do not vary across subjects (fewer than 2,
        or all equal: accuracies are multiples of 1/n_trials, so ties happen with few subjects).
        See :func:`kdlib.stats.paired_contrasts` for the ablation's own contrasts.
    """
    from . import stats

    pairs = [(reference, m) for m in METHODS if m != reference]
    table = stats.paired_contrasts(results, contrasts=pairs, metrics=(metric,))
    if table.empty:
        return pd.DataFrame()
    table = table.rename(columns={"a": "reference", "b": "method"})
    cols = ["task", "reference", "method", "metric", "n_subjects", "mean_diff", "t", "p_t", "wilcoxon_W",
            "p_wilcoxon", "cohen_dz", "ci_low", "ci_high", "p_holm", "n_seeds", "seed_sd", "inside_noise"]
    return table[cols].reset_index(drop=True)
