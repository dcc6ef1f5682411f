"""When does distillation help? A sweep over the knobs of the synthetic data set.

Introduced in ``notebooks/07_when_does_distillation_help.ipynb``; ``kdlib sweep`` runs it headless.

A *grid* is a centre configuration of the synthetic generator (:class:`~kdlib.data.synthetic.SynthConfig`)
and a few values of some of its knobs; the three knobs the experiment is about are
:data:`KNOBS`: the self-report noise of the ratings (``rating_noise_sd``), the strength of the
EEG → EOG path (``eeg_to_eog``: how much of the EEG's emotion cue an EOG-only model can in
principle read) and the trials per subject (``n_trials``, hence the training trials of a fold).
Each *point* of the grid is one data set::

    <out>/sweep.json             what the sweep is (centre config, protocol, knobs): a rerun must match
    <out>/data/<key>/            the point's synthetic data set (sNN.dat, ground_truth.csv), deterministic
    <out>/points/<key>/          its kdlib.evaluate.run_protocol run folder (folds/, results.csv),
                                 ceilings.csv (kdlib.ceilings.fold_ceilings) and point.json (done)
    <out>/sweep.csv              every point's results, one row per point x task x subject x fold x seed
                                 x method, with the knob values as columns
    <out>/ceilings.csv           every point's per-fold ceilings, keyed the same way

The key of a point is built from its knob values only
(``rating_noise_sd=1.0__eeg_to_eog=0.3__n_trials=40``), so results are keyed by the knobs: a point
whose values change gets a new folder, and nothing of another point is ever read for it. Everything
else (the centre configuration, the protocol, which knobs) is recorded in ``sweep.json`` and a rerun
with other settings is refused before anything is written. Adding values to a knob is allowed: the
new points are run, the finished ones are kept. A rerun skips finished points (``point.json``) and,
inside an unfinished point, finished units (``run_protocol`` resumes fold by fold and runs ``n_jobs``
units in parallel).

Statistics per point and task (:func:`sweep_gains`): the gain of each EOG student over the student
trained from scratch, V1/V2/V3 − scratch, paired by subject (folds then seeds averaged within a
subject first), with its 95 % t interval and Holm's correction over the three (the family of
:func:`kdlib.stats.paired_contrasts`); beside it, as references, teacher − scratch and the
*attainable gap* EOG ceiling − scratch: how much better than scratch an EOG-only classifier that knew
the generator could be on the same test trials (:mod:`kdlib.ceilings`).

Simplifications, said once: the knobs are varied one at a time around the centre (or as a full
factorial, ``design="factorial"``), the models are the small ``smoke``-size networks trained for a
few epochs so that a grid fits a 2-core CPU, and the data are synthetic: what the sweep shows is how
the method behaves against known ground truth, not what it does on real recordings.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from . import evaluate, paths, stats
from .data import synthetic
from .data.synthetic import SynthConfig
from .evaluate import DataSpec, ProtocolConfig
from .io import atomic_write

__all__ = [
    "KNOBS",
    "CEILINGS",
    "SWEEP_METHODS",
    "DISTILL_CONTRASTS",
    "REFERENCE_CONTRASTS",
    "SweepGrid",
    "Point",
    "FULL_CENTRE",
    "SWEEP_PRESETS",
    "KNOB_LABELS",
    "knob_column",
    "point_key",
    "grid_points",
    "knob_slice",
    "run_sweep",
    "load_sweep",
    "sweep_record",
    "sweep_summary",
    "sweep_gains",
    "knob_table",
    "diagnosis_table",
    "format_interval",
    "gain_lines",
    "write_sweep_report",
]

#: The knobs of the experiment (fields of :class:`~kdlib.data.synthetic.SynthConfig`).
KNOBS = ("rating_noise_sd", "eeg_to_eog", "n_trials")
#: Per-fold ceilings of :func:`kdlib.ceilings.fold_ceilings` (accuracies of a classifier that knows
#: the generator: from the latent itself, from what the EEG, the EOG, both carry).
CEILINGS = ("label_ceiling", "eeg_ceiling", "eog_ceiling", "eeg_eog_ceiling")
#: What every point trains: the floor, the teacher and the four EOG students (scratch is the EOG-only
#: baseline of the student's own architecture; the other baselines of the ablation are left out for time).
SWEEP_METHODS = ("majority", "teacher", "scratch", "v1", "v2", "v3")
#: The gains over scratch, one Holm family per point and task.
DISTILL_CONTRASTS = (("v1", "scratch"), ("v2", "scratch"), ("v3", "scratch"))
#: References beside them: what the teacher reaches, and the attainable gap of an EOG-only model.
REFERENCE_CONTRASTS = (("teacher", "scratch"), ("eog_ceiling", "scratch"))
#: Axis labels of the knobs.
KNOB_LABELS = {"rating_noise_sd": "rating noise SD (rating points)", "eeg_to_eog": "EEG → EOG path strength",
               "n_trials": "trials per subject"}
RECORD_FILE = "sweep.json"
DONE_FILE = "point.json"
_CONTRAST_NAMES = {"eog_ceiling": "EOG ceiling", "eeg_ceiling": "EEG ceiling", "label_ceiling": "label ceiling",
                   "eeg_eog_ceiling": "EEG+EOG ceiling"}


# --- the grid ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One point of a grid: its knob values, its key and its generator configuration."""

    values: tuple[tuple[str, float | int], ...]  # (knob, value) in the grid's knob order
    config: SynthConfig

    @property
    def key(self) -> str:
        return point_key(dict(self.values))


@dataclass(frozen=True)
class SweepGrid:
    """A sweep: a centre data set, knob values around it, and the protocol run at every point.

    Attributes
    ----------
    synth : SynthConfig
        The centre: every knob not being varied keeps its value here.
    knobs : tuple of (str, tuple)
        ``(knob, values)`` pairs; each knob a field of ``SynthConfig``. The centre value of a knob
        is always a level, whether listed or not.
    protocol : ProtocolConfig
        What every point runs (``subjects`` empty: all ``synth.n_subjects`` subjects).
    design : {'one_at_a_time', 'factorial'}
        One at a time: the centre, then each knob through its values with the others at the centre
        (1 + sum of (levels - 1) points). Factorial: every combination (product of the levels).
    smoke : bool
        A grid for CI and the notebook's smoke mode: its outputs carry
        :data:`kdlib.plotting.SMOKE_NOTE`.
    """

    synth: SynthConfig
    knobs: tuple[tuple[str, tuple], ...]
    protocol: ProtocolConfig
    design: Literal["one_at_a_time", "factorial"] = "one_at_a_time"
    smoke: bool = False

    def __post_init__(self):
        names = [k for k, _ in self.knobs]
        known = {f.name for f in fields(SynthConfig)} - {"n_subjects", "seed"}
        bad = [k for k in names if k not in known]
        if bad:
            raise ValueError(f"sweep knob(s) {bad} are not knobs of SynthConfig "
                             f"(the experiment's knobs: {', '.join(KNOBS)})")
        if not names or len(set(names)) != len(names):
            raise ValueError(f"a sweep needs one or more distinct knobs, got {names}")
        for name, values in self.knobs:
            if not len(values) or len(set(values)) != len(values):
                raise ValueError(f"knob {name}: give one or more distinct values, got {list(values)}")
        if self.design not in ("one_at_a_time", "factorial"):
            raise ValueError(f"unknown design {self.design!r}; choose one_at_a_time or factorial")
        if self.protocol.subjects:
            raise ValueError("a sweep runs every subject of its data sets: leave protocol.subjects empty "
                             "and set synth.n_subjects")

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.knobs)

    def centre(self) -> dict:
        """The centre value of every knob."""
        return {k: getattr(self.synth, k) for k in self.knob_names}

    def levels(self, knob: str) -> tuple:
        """The values of ``knob`` in increasing order, the centre included."""
        values = dict(self.knobs)[knob]
        return tuple(sorted({_cast(knob, v) for v in values} | {_cast(knob, getattr(self.synth, knob))}))


def _cast(knob: str, value):
    """A knob value in its field's type (int knobs must be whole numbers)."""
    default = getattr(SynthConfig(), knob)
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise ValueError(f"knob {knob}: only numeric knobs can be swept")
    if isinstance(default, int):
        if float(value) != int(value):
            raise ValueError(f"knob {knob} takes whole numbers, got {value!r}")
        return int(value)
    return float(value)


def knob_column(knob: str) -> str:
    """The column of a knob in the sweep's tables: ``synth_<knob>`` (``synth_n_trials`` is the trials
    per subject of the data set, not the ``n_trials`` column of a results table: test trials of a fold)."""
    return f"synth_{knob}"


def point_key(values: dict) -> str:
    """The folder name of a point: ``knob=value`` pairs joined by ``__``, in the given order.

    Parameters
    ----------
    values : dict
        Knob -> value (ints printed as ints, floats by ``repr``: ``1.0``, ``0.25``).

    Returns
    -------
    str
    """
    return "__".join(f"{k}={_cast(k, v)!r}" for k, v in values.items())


def grid_points(grid: SweepGrid) -> list[Point]:
    """Every point of ``grid`` in a fixed order, each config checked.

    One at a time: the centre, then the knobs' other values taken round-robin (the first value of
    every knob, then the second, ...), so that a sweep stopped early has moved every knob. Factorial:
    the centre, then the product of the levels in order.

    Parameters
    ----------
    grid : SweepGrid

    Returns
    -------
    list of Point
    """
    centre = grid.centre()
    if grid.design == "factorial":
        combos = [dict(zip(grid.knob_names, c)) for c in itertools.product(*map(grid.levels, grid.knob_names))]
        combos.sort(key=lambda c: c != {k: _cast(k, v) for k, v in centre.items()})
    else:  # the centre, then round-robin over the knobs: a sweep cut short has covered every knob
        moves = [[{**centre, knob: v} for v in grid.levels(knob) if v != _cast(knob, centre[knob])]
                 for knob in grid.knob_names]
        combos = [dict(centre)] + [m for group in itertools.zip_longest(*moves) for m in group if m is not None]
    points = []
    for combo in combos:
        values = tuple((k, _cast(k, combo[k])) for k in grid.knob_names)
        try:
            config = replace(grid.synth, **dict(values))
        except synthetic.SyntheticDataError as exc:
            raise ValueError(f"sweep point {point_key(dict(values))}: {exc}") from None
        points.append(Point(values, config))
    return points


def knob_slice(table: pd.DataFrame, grid_or_record, knob: str) -> pd.DataFrame:
    """The rows of a sweep table on the line through the centre along ``knob``.

    Parameters
    ----------
    table : pandas.DataFrame
        Any sweep table with the knob columns (results, :func:`sweep_summary`, :func:`sweep_gains`).
    grid_or_record : SweepGrid or dict
        The grid, or its record (``sweep.json``, :func:`sweep_record`).
    knob : str

    Returns
    -------
    pandas.DataFrame
        Rows whose other knobs sit at their centre values, sorted by ``knob``'s column
        (:func:`knob_column`).
    """
    centre = grid_or_record.centre() if isinstance(grid_or_record, SweepGrid) else grid_or_record["centre"]
    if knob not in centre:
        raise ValueError(f"{knob!r} is not a knob of this sweep ({', '.join(centre)})")
    keep = np.ones(len(table), dtype=bool)
    for other, value in centre.items():
        if other != knob:
            keep &= np.isclose(table[knob_column(other)].to_numpy(dtype=float), float(value))
    return table[keep].sort_values(knob_column(knob), kind="stable")


# --- presets ----------------------------------------------------------------------------------

def _protocol(**kw) -> ProtocolConfig:
    return ProtocolConfig(tasks=("valence",), methods=SWEEP_METHODS, model_preset="smoke", train_preset="smoke", **kw)


#: The full grid's centre, pinned (not a preset that may move): the ``privileged`` regime's effect sizes
#: (EEG effects 2.5 x the default, EOG effects halved: the teacher knows much more than the EOG shows) with
#: the default EEG -> EOG path of 0.5, through which the EOG can in principle show some of what the teacher
#: knows (the case learning with privileged information is about); ``eeg_to_eog = 0`` is then the
#: ``privileged`` preset itself. 4 subjects x 40 trials.
FULL_CENTRE = replace(synthetic.DEFAULT, n_subjects=4, valence_alpha_asymmetry=1.0, valence_temporal_beta=0.5,
                      arousal_posterior_alpha=0.5, arousal_beta=0.4, arousal_theta=0.25, arousal_blink_rate=0.35,
                      arousal_blink_amp=0.05, valence_saccade_rate=0.3, eeg_to_eog=0.5)

#: ``smoke``: CI and the notebook's smoke mode (2 subjects x 20 trials, 2 folds, 1 seed, 1 epoch, 4 points,
#: about a minute on 2 cores; its numbers mean nothing). ``full``: the recorded experiment
#: (``benchmarks/results/sweep_distill/``): :data:`FULL_CENTRE`, each knob through 3 values one at a time
#: (7 points), 3 folds, 3 seeds, the small models for at most 10 epochs; measured time per point and in
#: total: see that folder's README (``tests/test_sweep.py`` checks that the record matches this grid).
SWEEP_PRESETS: dict[str, SweepGrid] = {
    "smoke": SweepGrid(
        synth=replace(synthetic.SMOKE, n_subjects=2, n_trials=20),
        knobs=(("rating_noise_sd", (1.0, 2.5)), ("eeg_to_eog", (0.0, 0.5)), ("n_trials", (14, 20))),
        protocol=_protocol(n_folds=2, seeds=(0,), epochs=1), smoke=True),
    "full": SweepGrid(
        synth=FULL_CENTRE,
        knobs=(("rating_noise_sd", (0.25, 1.0, 2.5)), ("eeg_to_eog", (0.0, 0.5, 2.0)), ("n_trials", (16, 28, 40))),
        protocol=_protocol(n_folds=3, seeds=(0, 1, 2), epochs=10)),
}


# --- running ----------------------------------------------------------------------------------

def sweep_record(grid: SweepGrid) -> dict:
    """What a sweep folder's ``sweep.json`` holds: everything but the knob values, and the centre.

    Parameters
    ----------
    grid : SweepGrid

    Returns
    -------
    dict
        ``synth`` (the centre config without the knobs, as JSON), ``knobs`` (their names),
        ``centre`` (their centre values), ``design``, ``protocol`` and ``smoke``.
    """
    synth = {k: v for k, v in grid.synth.to_json().items() if k not in grid.knob_names}
    return {"synth": synth, "knobs": list(grid.knob_names), "centre": grid.centre(), "design": grid.design,
            "protocol": grid.protocol.to_dict(), "smoke": grid.smoke}


def _check_record(out: Path, grid: SweepGrid) -> dict:
    """Write ``sweep.json``, or make sure the folder's sweep has these settings (one line if not)."""
    record = json.loads(json.dumps(sweep_record(grid)))
    path = out / RECORD_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable sweep record ({type(exc).__name__}); restore it, or choose "
                             "another --out") from None
        differ = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if differ:
            raise ValueError(f"{out}: holds a sweep with other settings ({', '.join(differ)} differ); its points "
                             "are kept: choose another --out, or delete the folder to start again")
        return record
    if (out / "points").is_dir() and any((out / "points").iterdir()):
        raise ValueError(f"{out}: holds sweep points but no {RECORD_FILE}; choose another --out")
    with atomic_write(path, "w") as fh:
        json.dump(record, fh, indent=2)
    return record


def _point_ceilings(spec: DataSpec, config: ProtocolConfig, data_dir: Path) -> pd.DataFrame:
    """The per-fold ceilings of a point (empty when the data set has no ground truth)."""
    from . import ceilings

    if not ceilings.has_ground_truth(data_dir):
        return pd.DataFrame()
    return ceilings.fold_ceilings(spec, config)


def _run_point(point: Point, grid: SweepGrid, out: Path, n_jobs: int, progress: bool) -> None:
    """Write the point's data, run (or resume) its protocol and mark it done; then its ceilings.

    The ceilings are cheap (no network is trained) and kept apart: a point whose ``ceilings.csv``
    is missing gets it computed again, without training anything.
    """
    data_dir, run_dir = out / "data" / point.key, out / "points" / point.key
    spec = DataSpec(dataset="synthetic", data_dir=str(data_dir), cache_dir=str(out / "cache"))
    if not (run_dir / DONE_FILE).is_file():
        t0 = time.perf_counter()
        synthetic.write_dataset(data_dir, point.config, progress=False)
        results = evaluate.run_protocol(spec, grid.protocol, out=run_dir, n_jobs=n_jobs, progress=progress)
        done = {"key": point.key, "values": dict(point.values), "n_rows": len(results),
                "seconds": round(time.perf_counter() - t0, 1)}
        with atomic_write(run_dir / DONE_FILE, "w") as fh:
            json.dump(done, fh, indent=2)
    if not (run_dir / "ceilings.csv").is_file():
        ceilings = _point_ceilings(spec, grid.protocol, data_dir)
        with atomic_write(run_dir / "ceilings.csv", "w") as fh:
            ceilings.to_csv(fh, index=False)


def _keyed(table: pd.DataFrame, point: Point) -> pd.DataFrame:
    """``table`` with the point's key and knob values (:func:`knob_column`) as its first columns."""
    front = pd.DataFrame({"point": point.key, **{knob_column(k): v for k, v in point.values}}, index=table.index)
    return pd.concat([front, table], axis=1)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a point without ceilings writes an empty file
        return pd.DataFrame()


def _assemble(points: list[Point], out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = [_keyed(evaluate.load_results(out / "points" / p.key), p) for p in points]
    ceilings = [_keyed(c, p) for p in points if len(c := _read_csv(out / "points" / p.key / "ceilings.csv"))]
    return (pd.concat(results, ignore_index=True),
            pd.concat(ceilings, ignore_index=True) if ceilings else pd.DataFrame())


def run_sweep(grid: SweepGrid, out: str | os.PathLike | None = None, n_jobs: int = 1,
              progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run (or resume) every point of ``grid``; write ``sweep.csv`` and ``ceilings.csv``.

    Parameters
    ----------
    grid : SweepGrid
        A preset of :data:`SWEEP_PRESETS` or your own.
    out : path-like, optional
        Sweep folder (default ``results/sweep``); a relative path is taken from the project root.
    n_jobs : int
        Units of a point trained in parallel (processes, one torch thread each).
    progress : bool
        A tqdm bar over the points and, inside each, over its units.

    Returns
    -------
    (results, ceilings) : tuple of pandas.DataFrame
        ``results``: every point's results table (:func:`kdlib.evaluate.run_protocol`) with the
        columns ``point`` (its key) and one per knob (``synth_<knob>``, :func:`knob_column`) in front; ``ceilings``: the per-fold ceilings
        (:func:`kdlib.ceilings.fold_ceilings`) keyed the same way (empty without ground truth).

    Notes
    -----
    Resumable: finished points are skipped, unfinished ones resume unit by unit. The folder's
    ``sweep.json`` must match the grid (other settings are refused in one line before anything is
    written); only the points of ``grid`` go into the tables, even if the folder holds more.
    """
    from tqdm.auto import tqdm

    out = paths.resolve(out, paths.results_dir() / "sweep")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; choose another --out")
    points = grid_points(grid)  # every point's config is checked before anything is written
    out.mkdir(parents=True, exist_ok=True)
    _check_record(out, grid)
    bar = tqdm(points, desc="sweep", unit="point", disable=not progress)
    for point in bar:
        bar.set_postfix_str(point.key)
        _run_point(point, grid, out, n_jobs, progress)
    results, ceilings = _assemble(points, out)
    for name, frame in (("sweep.csv", results), ("ceilings.csv", ceilings)):
        with atomic_write(out / name, "w") as fh:
            frame.to_csv(fh, index=False)
    return results, ceilings


def load_sweep(out: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A finished sweep folder (or a recorded copy of its tables): results, ceilings and record.

    Parameters
    ----------
    out : path-like
        A folder with ``sweep.csv``, ``ceilings.csv`` and ``sweep.json``.

    Returns
    -------
    (results, ceilings, record) : tuple
        As :func:`run_sweep` returns them, and the sweep's record (:func:`sweep_record`).
    """
    out = Path(out)
    missing = [n for n in ("sweep.csv", "ceilings.csv", RECORD_FILE) if not (out / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: not a finished sweep (no {', '.join(missing)}); run kdlib sweep first")
    record = json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))
    return pd.read_csv(out / "sweep.csv"), _read_csv(out / "ceilings.csv"), record


# --- statistics -------------------------------------------------------------------------------

_ROW_KEYS = ["task", "subject", "fold", "seed"]


def _with_ceilings(results: pd.DataFrame, ceilings: pd.DataFrame) -> pd.DataFrame:
    """One point's results (accuracy columns only) with each ceiling as a pseudo-method."""
    cols = _ROW_KEYS + ["method", "acc_trial", "n_trials", "majority_trial"]
    parts = [stats.with_seed(results)[[c for c in cols if c in results or c == "seed"]]]
    for name in (c for c in CEILINGS if len(ceilings) and c in ceilings):
        part = ceilings[_ROW_KEYS + ["n_test_trials", "majority_trial", name]]
        parts.append(part.rename(columns={name: "acc_trial", "n_test_trials": "n_trials"}).assign(method=name))
    return pd.concat(parts, ignore_index=True)


def _per_point(results: pd.DataFrame, ceilings: pd.DataFrame):
    """(knob values, the point's table with ceilings) for every point, in order of appearance."""
    knobs = [c for c in results.columns[:results.columns.get_loc("task")] if c.startswith("synth_")]
    for key, part in results.groupby("point", sort=False):
        mine = ceilings[ceilings["point"] == key] if len(ceilings) else ceilings
        yield {"point": key, **part.iloc[0][knobs].to_dict()}, _with_ceilings(part, mine)


def sweep_summary(results: pd.DataFrame, ceilings: pd.DataFrame) -> pd.DataFrame:
    """Per point, task and method (ceilings included): trial accuracy over subjects, and what training did.

    Parameters
    ----------
    results, ceilings : pandas.DataFrame
        :func:`run_sweep` / :func:`load_sweep` output.

    Returns
    -------
    pandas.DataFrame
        The knob columns, ``task, method``, ``acc_trial_mean/_sd/_ci_low/_ci_high/_seed_sd``,
        ``majority_trial_mean``, ``n_subjects, n_seeds`` (:func:`kdlib.stats.method_summary`; seeds
        averaged within subjects first) and, averaged over every fold, the students' loss shares at
        their best epoch (``share_ce, share_kd, share_feat``), ``best_epoch`` and ``n_teach_trials``.
    """
    steps = [c for c in ("share_ce", "share_kd", "share_feat", "best_epoch", "n_teach_trials") if c in results]
    rows = []
    for front, table in _per_point(results, ceilings):
        summary = stats.method_summary(table, metrics=("acc_trial",))
        done = results[results["point"] == front["point"]].groupby(["task", "method"])[steps].mean()
        summary = summary.merge(done.reset_index(), on=["task", "method"], how="left")
        rows.append(pd.concat([pd.DataFrame([front] * len(summary)), summary], axis=1))
    return pd.concat(rows, ignore_index=True)


def sweep_gains(results: pd.DataFrame, ceilings: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per point and task: each student's gain over scratch, paired by subject, and the references.

    Parameters
    ----------
    results, ceilings : pandas.DataFrame
        :func:`run_sweep` / :func:`load_sweep` output.
    level : float
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        The knob columns and :func:`kdlib.stats.paired_contrasts` of trial accuracy: one row per
        (point, task, contrast) with ``family`` ("distillation": V1/V2/V3 − scratch, Holm-adjusted
        together; "reference": teacher − scratch and EOG ceiling − scratch, the attainable gap),
        ``mean_diff, ci_low, ci_high, p_t, p_holm, cohen_dz, n_subjects, n_seeds, seed_sd`` and
        ``inside_noise`` (the interval includes 0).
    """
    rows = []
    for front, table in _per_point(results, ceilings):
        for family, pairs in (("distillation", DISTILL_CONTRASTS), ("reference", REFERENCE_CONTRASTS)):
            part = stats.paired_contrasts(table, contrasts=pairs, metrics=("acc_trial",), level=level)
            if len(part):
                part = part.assign(family=family, contrast=[_label(a, b) for a, b in zip(part["a"], part["b"])])
                rows.append(pd.concat([pd.DataFrame([front] * len(part)), part.reset_index(drop=True)], axis=1))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()  # empty: no student and no scratch


def _label(a: str, b: str) -> str:
    return stats.contrast_label(a, b) if a not in _CONTRAST_NAMES else f"{_CONTRAST_NAMES[a]} − {b}"


# --- report -----------------------------------------------------------------------------------

def format_interval(mean: float, low: float, high: float, scale: float = 100.0, sign: bool = False) -> str:
    """``"+4.2 [-1.0, +9.4]"``: a mean and its interval, scaled (100: % or percentage points).

    Parameters
    ----------
    mean, low, high : float
        The interval's bounds may be NaN (fewer than 2 subjects): the mean is then shown alone.
    scale : float
    sign : bool
        Always print the sign (differences).

    Returns
    -------
    str
        Empty when the mean is NaN; one decimal; never "-0.0".
    """
    if not np.isfinite(mean):
        return ""
    fmt = "{:+.1f}" if sign else "{:.1f}"
    one = lambda x: fmt.format(round(scale * x, 1) + 0.0)  # noqa: E731  (+ 0.0: no negative zero)
    return f"{one(mean)} [{one(low)}, {one(high)}]" if np.isfinite(low) else one(mean)


def gain_lines(gains: pd.DataFrame, record: dict, task: str) -> list[str]:
    """One line per knob value (others at the centre): every contrast over scratch, mean [95 % CI] in pp.

    Parameters
    ----------
    gains : pandas.DataFrame
        :func:`sweep_gains` of a sweep.
    record : dict
        The sweep's record (:func:`load_sweep`).
    task : str

    Returns
    -------
    list of str
        ``"rating_noise_sd = 2.5: V1 +1.2 [-3.0, +5.4]  V2 ...  teacher ...  EOG ceiling ..."``.
    """
    lines = []
    for knob in record["knobs"]:
        line = knob_slice(gains[gains["task"] == task], record, knob)
        for value, part in line.groupby(knob_column(knob), sort=True):
            cells = [f"{c.contrast.removesuffix(' − scratch')} "
                     f"{format_interval(c.mean_diff, c.ci_low, c.ci_high, sign=True)}" for c in part.itertuples()]
            lines.append(f"{knob} = {value:g}: " + "  ".join(cells))
    return lines


def _slice_table(summary: pd.DataFrame, gains: pd.DataFrame, record: dict, knob: str, task: str) -> pd.DataFrame:
    """One knob's line through the centre: accuracies and gains (percentage points) per value."""
    acc = knob_slice(summary[summary["task"] == task], record, knob)
    gain = knob_slice(gains[gains["task"] == task], record, knob)
    column, rows = knob_column(knob), []
    for value, part in acc.groupby(column, sort=True):
        by = part.set_index("method")
        g = gain[np.isclose(gain[column], value)].set_index("a")
        row = {knob: value}
        for method, name in (("majority", "majority"), ("scratch", "scratch"), ("teacher", "teacher"),
                             ("eog_ceiling", "EOG ceiling")):
            if method in by.index:
                r = by.loc[method]
                row[f"{name} (%)"] = format_interval(r["acc_trial_mean"], r["acc_trial_ci_low"], r["acc_trial_ci_high"])
        for a in ("v1", "v2", "v3", "teacher", "eog_ceiling"):
            if a in g.index:
                r = g.loc[a]
                noise = " (noise)" if r["inside_noise"] else ""
                row[f"{_label(a, 'scratch')} (pp)"] = format_interval(r["mean_diff"], r["ci_low"], r["ci_high"],
                                                               sign=True) + noise
        rows.append(row)
    return pd.DataFrame(rows)


def knob_table(summary: pd.DataFrame, gains: pd.DataFrame, record: dict, knob: str, task: str) -> pd.DataFrame:
    """One knob's line through the centre, for reading: accuracies and gains per value.

    Parameters
    ----------
    summary, gains : pandas.DataFrame
        :func:`sweep_summary` and :func:`sweep_gains` of a sweep.
    record : dict
        The sweep's record (``sweep.json``, :func:`load_sweep`).
    knob : str
    task : str

    Returns
    -------
    pandas.DataFrame
        One row per value of ``knob`` (other knobs at the centre), text columns: majority, scratch,
        teacher and EOG ceiling as trial accuracy mean [95 % CI] over subjects (%), and V1/V2/V3 −
        scratch, teacher − scratch, EOG ceiling − scratch as paired differences [95 % CI] in
        percentage points, "(noise)" where the interval includes 0.
    """
    return _slice_table(summary, gains, record, knob, task)


def diagnosis_table(summary: pd.DataFrame, gains: pd.DataFrame, task: str) -> pd.DataFrame:
    """Per point, what could explain a gain or its absence: the teacher, the ceilings, the loss, the data.

    Parameters
    ----------
    summary, gains : pandas.DataFrame
        :func:`sweep_summary` and :func:`sweep_gains` of a sweep.
    task : str

    Returns
    -------
    pandas.DataFrame
        One row per point (its knob columns first), numbers: mean trial accuracy over subjects (%)
        of ``scratch``, ``teacher``, the ceilings ``eog_ceiling``, ``eeg_eog_ceiling`` (the
        teacher's inputs) and ``label_ceiling`` where present; mean paired differences over scratch
        (pp) ``gain_v1``, ``gain_v2``, ``gain_v3``, ``teacher_gap`` (teacher − scratch) and
        ``attainable`` (EOG ceiling − scratch); the loss shares at the best epoch ``share_kd_v1``,
        ``share_kd_v2``, ``share_feat_v2``; ``n_teach_trials`` (trials a fold taught on).
    """
    acc = summary[summary["task"] == task]
    gain = gains[gains["task"] == task] if len(gains) else gains
    knobs = [c for c in summary.columns if c.startswith("synth_")]
    rows = []
    for key, part in acc.groupby("point", sort=False):
        by = part.set_index("method")
        row = {"point": key, **part.iloc[0][knobs].to_dict()}
        for method in ("scratch", "teacher") + CEILINGS:
            if method in by.index:
                row[method] = 100 * by.loc[method, "acc_trial_mean"]
        g = gain[gain["point"] == key].set_index("a") if len(gain) else pd.DataFrame()
        for a, name in (("v1", "gain_v1"), ("v2", "gain_v2"), ("v3", "gain_v3"), ("teacher", "teacher_gap"),
                        ("eog_ceiling", "attainable")):
            if a in g.index:
                row[name] = 100 * g.loc[a, "mean_diff"]
        for method, col in (("v1", "share_kd"), ("v2", "share_kd"), ("v2", "share_feat")):
            if method in by.index and col in by:
                row[f"{col}_{method}"] = by.loc[method, col]
        if "n_teach_trials" in by and "scratch" in by.index:
            row["n_teach_trials"] = by.loc["scratch", "n_teach_trials"]
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(summary: pd.DataFrame, gains: pd.DataFrame, record: dict) -> str:
    from .plotting import SMOKE_NOTE

    proto = record["protocol"]
    lines = [f"**{SMOKE_NOTE}**", ""] if record.get("smoke") else []
    lines += ["# When does distillation help? A sweep over the synthetic generator's knobs", "",
              "**SYNTHETIC DATA.** Every point is a data set of kdlib's generator, whose effects are built in: "
              "the sweep shows how the method behaves against known ground truth, not what it does on real "
              "EEG/EOG.", "",
              f"Centre: {', '.join(f'{k} = {v}' for k, v in record['centre'].items())}; "
              f"{record['synth'].get('n_subjects')} subjects; protocol {proto['protocol']}, {proto['n_folds']} folds, "
              f"seeds {', '.join(map(str, proto['seeds']))}, tasks {', '.join(proto['tasks'])}, models "
              f"{proto['model_preset']} ({proto['epochs']} epochs). Accuracies: trial level, mean [95 % CI] over "
              "subjects; gains: paired by subject, percentage points, V1/V2/V3 Holm-adjusted together; "
              "'(noise)' marks an interval that includes 0.", ""]
    for task in proto["tasks"]:
        for knob in record["knobs"]:
            table = _slice_table(summary, gains, record, knob, task)
            lines += [f"## {task}: {knob} (other knobs at the centre)", "", table.to_markdown(index=False), ""]
        why = diagnosis_table(summary, gains, task).drop(columns="point")
        lines += [f"## {task}: what could explain it, per point", "",
                  "Accuracies in %, gains over scratch in percentage points (means over subjects), loss shares of "
                  "the students at their best epoch, trials a fold taught on.", "",
                  why.round(3).to_markdown(index=False), ""]
    return "\n".join(lines)


def write_sweep_report(out: str | os.PathLike, report_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write the tables and figures of a finished sweep.

    Parameters
    ----------
    out : path-like
        A sweep folder (:func:`run_sweep`).
    report_dir : path-like, optional
        Where to write (default: ``out`` itself).

    Returns
    -------
    list of Path
        ``summary.csv`` (:func:`sweep_summary`), ``gains.csv`` (:func:`sweep_gains`), ``summary.md``
        (one table per task and knob, :func:`knob_table`, and the :func:`diagnosis_table`) and ``gain_<task>_<knob>.png``
        (:func:`kdlib.plotting.plot_sweep`), each figure stamped as synthetic (and smoke).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import plotting

    results, ceilings, record = load_sweep(out)
    target = Path(report_dir) if report_dir is not None else Path(out)
    summary, gains = sweep_summary(results, ceilings), sweep_gains(results, ceilings)
    written = []
    for name, frame in (("summary.csv", summary), ("gains.csv", gains)):
        with atomic_write(target / name, "w") as fh:
            frame.to_csv(fh, index=False)
        written.append(target / name)
    with atomic_write(target / "summary.md", "w") as fh:
        fh.write(_markdown(summary, gains, record))
    written.append(target / "summary.md")
    plotting.set_style()
    for task in record["protocol"]["tasks"]:
        for knob in record["knobs"]:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            plotting.plot_sweep(knob_slice(gains[gains["task"] == task], record, knob), knob_column(knob),
                                label=KNOB_LABELS.get(knob, knob), ax=ax)
            ax.set_title(f"{task}: gain over the scratch student along {knob}")
            plotting.mark_synthetic(fig)
            plotting.mark_smoke(fig, record.get("smoke", False))
            fig.tight_layout(rect=(0, 0.05 if record.get("smoke") else 0, 1, 0.97))
            path = target / f"gain_{task}_{knob}.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written
