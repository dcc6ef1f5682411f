"""Statistics of a results table: seeds, subjects, intervals, paired contrasts and chance bands.

Introduced in ``notebooks/05_evaluation.ipynb``; ``kdlib report`` writes every table of it.

The order of aggregation is the point of this module. A results table
(:func:`kdlib.evaluate.run_protocol`) has one row per (task, subject, fold, seed, method)::

    mean over the folds of one seed        -> one value per (task, method, subject, seed)
    mean over the seeds                    -> one value per (task, method, subject)
    mean, SD and 95 % t interval over subjects, paired tests across subjects

Subjects are the independent units: folds of one subject share its trials, and seeds repeat the
same subjects, so neither counts as a new observation. What the seeds tell instead is how much
a number moves from one run to the next (the *seed-to-seed spread*), reported beside the
interval so that a reader sees whether a difference exceeds run-to-run noise.

Only numpy, pandas and scipy are imported here (no other kdlib module), so that
:mod:`kdlib.evaluate` and :mod:`kdlib.report` can both build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import signal, stats

__all__ = [
    "COUNTS",
    "DEFAULT_METRICS",
    "DEFAULT_CONTRASTS",
    "with_seed",
    "macro_f1_from_counts",
    "subject_means",
    "t_interval",
    "seed_spread",
    "method_summary",
    "paired_difference",
    "ratio_interval",
    "holm",
    "contrast_label",
    "paired_contrasts",
    "chance_band",
    "chance_table",
]

#: Trial-level confusion counts of every row (:func:`kdlib.evaluate.scores`).
COUNTS = ("trial_tn", "trial_fp", "trial_fn", "trial_tp")
DEFAULT_METRICS = ("acc_trial", "f1_trial", "acc_window", "f1_window")
#: (a, b) pairs, each read as "a − b". The EOG student of the last one is V3, the full method.
DEFAULT_CONTRASTS = (("v1", "scratch"), ("v2", "v1"), ("v3", "v2"), ("v3", "scratch"),
                     ("teacher", "eog_only"), ("v3", "majority"))
_MAJORITY = ("majority_trial", "majority_window")
_SHORT = {"v1": "V1", "v2": "V2", "v3": "V3", "eog_only": "EOG-only", "eeg_only": "EEG-only",
          "late_fusion": "late fusion"}


# --- per subject -----------------------------------------------------------------------------

def with_seed(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with a ``seed`` column (0 when the table has none: a one-seed run).

    Parameters
    ----------
    results : pandas.DataFrame
        A results table, with or without ``seed``.

    Returns
    -------
    pandas.DataFrame
        The same rows; a copy with ``seed = 0`` when the column was missing.
    """
    return results if "seed" in results else results.assign(seed=0)


def macro_f1_from_counts(tn, fp, fn, tp) -> np.ndarray:
    """Macro F1 of a binary confusion matrix, from its counts.

    Parameters
    ----------
    tn, fp, fn, tp : array-like
        Counts (any shape, broadcast together); class 1 is "positive".

    Returns
    -------
    ndarray of float
        Mean of the two classes' F1, ``2 tp / (2 tp + fp + fn)`` and ``2 tn / (2 tn + fn + fp)``;
        a class that is neither present nor predicted scores 0, as
        ``sklearn.metrics.f1_score(..., zero_division=0)`` does.
    """
    tn, fp, fn, tp = (np.asarray(c, dtype=float) for c in (tn, fp, fn, tp))

    def f1(hit, wrong):
        den = 2 * hit + wrong
        return np.divide(2 * hit, den, out=np.zeros_like(den), where=den > 0)

    return (f1(tp, fp + fn) + f1(tn, fp + fn)) / 2


def _metrics(results: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The requested metrics plus the pooled F1 when the confusion counts are there."""
    out = [m for m in metrics if m != "f1_trial_pooled"]
    if all(c in results for c in COUNTS):
        out.append("f1_trial_pooled")
    return out


def _add_pooled(table: pd.DataFrame) -> pd.DataFrame:
    if all(c in table for c in COUNTS):
        table["f1_trial_pooled"] = macro_f1_from_counts(*(table[c] for c in COUNTS))
    return table


def subject_means(results: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS):
    """Mean over folds within each seed, then mean over seeds: one value per subject.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per (task, subject, fold[, seed], method) with the ``metrics`` columns.
    metrics : sequence of str
        Columns to average. The majority-class accuracies (``majority_trial``,
        ``majority_window``) and ``n_trials`` come along when present.

    Returns
    -------
    (per_subject, per_seed) : tuple of pandas.DataFrame
        ``per_seed``: one row per (task, method, subject, seed) with the fold means, ``n_folds``,
        ``n_trials`` (test trials summed over the folds of that seed) and the confusion counts
        summed over folds. ``per_subject``: one row per (task, method, subject) with the mean
        over seeds of the per-seed values, ``n_seeds`` and the counts summed over folds and seeds.
        Where the counts are present both carry ``f1_trial_pooled``: macro F1 of the pooled
        counts (:func:`macro_f1_from_counts`), beside ``f1_trial``, the mean of per-fold F1.
        Rows keep the order in which (task, method, subject) first appear.
    """
    results = with_seed(results)
    cols = [m for m in metrics if m != "f1_trial_pooled"]
    cols += [c for c in _MAJORITY if c in results and c not in cols]
    counts = list(COUNTS) if all(c in results for c in COUNTS) else []
    keys = ["task", "method", "subject"]
    grouped = results.groupby(keys + ["seed"], sort=False)
    per_seed = grouped[cols].mean()
    per_seed["n_folds"] = grouped.size()
    if "n_trials" in results:
        per_seed["n_trials"] = grouped["n_trials"].sum()
    if counts:
        per_seed[counts] = grouped[counts].sum()
    per_seed = _add_pooled(per_seed.reset_index())

    grouped = per_seed.groupby(keys, sort=False)
    means = cols + (["n_trials"] if "n_trials" in per_seed else [])
    per_subject = grouped[means].mean()
    per_subject["n_seeds"] = grouped.size()
    if counts:
        per_subject[counts] = grouped[counts].sum()
    return _add_pooled(per_subject.reset_index()), per_seed


# --- over subjects ---------------------------------------------------------------------------

def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its ``level`` t interval over independent values (here: subjects).

    Parameters
    ----------
    values : array-like
        One value per subject; NaN are dropped.
    level : float
        Coverage of the interval.

    Returns
    -------
    (mean, low, high) : tuple of float
        ``mean ± t_{(1+level)/2, n-1} · SD / √n`` (:data:`scipy.stats.t`); the bounds are NaN
        with fewer than 2 values, the mean is NaN with none.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if n < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def seed_spread(per_seed: pd.DataFrame, column: str) -> float:
    """SD across seeds of the mean over subjects of ``column`` (one task and method).

    Parameters
    ----------
    per_seed : pandas.DataFrame
        Rows of one (task, method) of :func:`subject_means`' per-seed table (or any table with
        ``subject``, ``seed`` and ``column``).
    column : str

    Returns
    -------
    float
        Only subjects present in every seed count, so that each seed's mean is over the same
        subjects. NaN with fewer than two seeds.
    """
    wide = per_seed.pivot_table(index="subject", columns="seed", values=column, aggfunc="mean").dropna()
    if wide.shape[1] < 2 or wide.empty:
        return np.nan
    return float(wide.mean(axis=0).std(ddof=1))


def method_summary(results: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS,
                   level: float = 0.95) -> pd.DataFrame:
    """Per task and method: mean, SD and ``level`` t interval over subjects, and the seed spread.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (with or without ``seed``).
    metrics : sequence of str
        Metric columns; ``f1_trial_pooled`` is added when the confusion counts are there.
    level : float
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per (task, method) with, for every metric ``m``: ``m_mean``, ``m_sd`` (SD over
        subjects), ``m_ci_low``, ``m_ci_high`` (:func:`t_interval` over subjects) and
        ``m_seed_sd`` (:func:`seed_spread`; NaN with one seed); ``majority_trial_mean/_sd`` and
        ``majority_window_mean/_sd`` where present; ``n_subjects`` and ``n_seeds``.
    """
    per_subject, per_seed = subject_means(results, metrics)
    metrics = _metrics(per_subject, metrics)
    seeds_of = dict(list(per_seed.groupby(["task", "method"], sort=False)))
    rows = []
    for (task, method), part in per_subject.groupby(["task", "method"], sort=False):
        row = dict(task=task, method=method)
        seeds = seeds_of[(task, method)]
        for m in metrics:
            mean, low, high = t_interval(part[m], level)
            row.update({f"{m}_mean": mean, f"{m}_sd": part[m].std(ddof=1), f"{m}_ci_low": low,
                        f"{m}_ci_high": high, f"{m}_seed_sd": seed_spread(seeds, m)})
        for m in (c for c in _MAJORITY if c in part):
            row.update({f"{m}_mean": part[m].mean(), f"{m}_sd": part[m].std(ddof=1)})
        row.update(n_subjects=len(part), n_seeds=int(seeds["seed"].nunique()))
        rows.append(row)
    return pd.DataFrame(rows)


# --- paired contrasts ------------------------------------------------------------------------

def paired_difference(a, b, level: float = 0.95) -> dict:
    """Paired statistics of ``a − b`` across subjects.

    Parameters
    ----------
    a, b : array-like, same length
        One value per subject for each of two methods; pairs with a NaN are dropped.
    level : float
        Coverage of the interval of the mean difference.

    Returns
    -------
    dict
        ``n_subjects, mean_a, mean_b, mean_diff, sd_diff, ci_low, ci_high`` (t interval of the
        mean difference), ``t, p_t`` (:func:`scipy.stats.ttest_rel`), ``wilcoxon_W, p_wilcoxon``
        (:func:`scipy.stats.wilcoxon`) and ``cohen_dz`` (mean difference / SD of the differences).

    Notes
    -----
    No warnings, NaN instead: t, p_t and d_z are NaN when the differences do not vary (fewer than
    2 subjects, or all equal: accuracies are multiples of 1 / n_trials, so ties happen with few
    subjects); the Wilcoxon test is NaN with fewer than 6 subjects (its smallest two-sided p is
    then above 0.05) or when every difference is 0. When all differences are equal the interval
    has width 0.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    n = len(d)
    mean, low, high = t_interval(d, level)
    varies = n > 1 and np.ptp(d) > 1e-12  # else t and d_z are undefined (0 / 0 or x / 0)
    t, p = stats.ttest_rel(a, b) if varies else (np.nan, np.nan)
    w, pw = stats.wilcoxon(d) if n >= 6 and np.any(d != 0) else (np.nan, np.nan)
    sd = float(d.std(ddof=1)) if n > 1 else np.nan
    return dict(n_subjects=n, mean_a=a.mean() if n else np.nan, mean_b=b.mean() if n else np.nan,
                mean_diff=mean, sd_diff=sd, ci_low=low, ci_high=high, t=float(t), p_t=float(p),
                wilcoxon_W=float(w), p_wilcoxon=float(pw), cohen_dz=mean / sd if varies else np.nan)


def ratio_interval(a, b, level: float = 0.95) -> dict:
    """The ratio of two paired means, ``mean(a) / mean(b)``, with Fieller's interval across subjects.

    Parameters
    ----------
    a, b : array-like, same length
        One value per subject each (e.g. a method's gain over the majority class and the
        ceiling's gain over it); pairs with a NaN are dropped.
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``n_subjects, mean_a, mean_b, ratio`` and ``ci_low, ci_high``: every ``r`` for which the
        paired differences ``a - r b`` have a mean the t test (``level``) does not reject as 0
        (Fieller 1954). ``bounded`` is False when that set is not a finite interval, i.e. when
        ``mean(b)`` itself is not distinguishable from 0; the bounds are then NaN.

    Notes
    -----
    Subject by subject ratios would blow up where a subject's ``b`` is near 0; the ratio of the
    means with Fieller's interval keeps the pairing without dividing by any single subject.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    out = dict(n_subjects=n, mean_a=a.mean() if n else np.nan, mean_b=b.mean() if n else np.nan,
               ratio=np.nan, ci_low=np.nan, ci_high=np.nan, bounded=False)
    if n == 0 or out["mean_b"] == 0:
        return out
    out["ratio"] = out["mean_a"] / out["mean_b"]
    if n < 2:
        return out
    q = stats.t.ppf((1 + level) / 2, n - 1) ** 2 / n  # t^2 / n
    cov = np.cov(a, b, ddof=1)  # (2, 2)
    ma, mb = out["mean_a"], out["mean_b"]
    # (mb^2 - q Sbb) r^2 - 2 (ma mb - q Sab) r + (ma^2 - q Saa) <= 0
    c2, c1, c0 = mb**2 - q * cov[1, 1], ma * mb - q * cov[0, 1], ma**2 - q * cov[0, 0]
    disc = c1**2 - c2 * c0
    if c2 > 0 and disc >= 0:
        root = math.sqrt(disc)
        out.update(ci_low=(c1 - root) / c2, ci_high=(c1 + root) / c2, bounded=True)
    return out


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stay NaN and do not count).

    Parameters
    ----------
    p : array-like of float

    Returns
    -------
    ndarray
        Sorted ascending, the i-th smallest of m p-values becomes ``(m - i) · p_(i)`` (i from
        0), made non-decreasing by a running maximum and capped at 1; back in the input order.
        Rejecting where the adjusted p < α controls the family-wise error rate at α.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    order = np.argsort(q, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(q) - np.arange(len(q))) * q[order]))
    back = np.empty_like(q)
    back[order] = adjusted
    out[ok] = back
    return out


def contrast_label(a: str, b: str) -> str:
    """``"V3 − scratch"``-style name of the contrast ``a − b``.

    Parameters
    ----------
    a, b : str
        Method names (``"v3"``, ``"scratch"``, ...); the variations and baselines get their short
        display names (``V3``, ``EOG-only``, ...), any other name is used as it is.

    Returns
    -------
    str
        ``"<a> − <b>"`` (with a minus sign, U+2212).
    """
    return f"{_SHORT.get(a, a)} − {_SHORT.get(b, b)}"


def _seed_diff_spread(per_seed: pd.DataFrame, a: str, b: str, metric: str) -> float:
    """SD across seeds of the mean over subjects of ``a − b`` (subjects present everywhere)."""
    wide = per_seed.pivot_table(index=["subject", "seed"], columns="method", values=metric, aggfunc="mean")
    diff = (wide[a] - wide[b]).rename("diff").reset_index()
    return seed_spread(diff, "diff")


def paired_contrasts(results: pd.DataFrame, contrasts=DEFAULT_CONTRASTS, metrics=("acc_trial", "f1_trial"),
                     level: float = 0.95) -> pd.DataFrame:
    """The ablation's paired contrasts across subjects, per task and metric, Holm-adjusted.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (with or without ``seed``).
    contrasts : sequence of (str, str)
        Method pairs ``(a, b)``, each tested as ``a − b``. The default is
        :data:`DEFAULT_CONTRASTS`: V1 − scratch, V2 − V1, V3 − V2, V3 − scratch,
        teacher − EOG-only, and "EOG student − majority" with V3 (the full method) as the EOG
        student. Pairs with a method that is not in the table are skipped.
    metrics : sequence of str
        Metric columns (``f1_trial_pooled`` allowed when the confusion counts are there).
    level : float
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per (task, metric, contrast): ``task, metric, contrast`` (label), ``a, b``, the
        columns of :func:`paired_difference` on the per-subject means (seeds averaged first),
        ``n_seeds``, ``seed_sd`` (SD across seeds of the mean difference; NaN with one seed),
        ``p_holm`` and ``p_wilcoxon_holm`` (:func:`holm` across the contrasts of one task and
        metric) and ``inside_noise``: True unless the interval of the mean difference excludes 0
        (also True when it is undefined, with fewer than 2 subjects: nothing then shows a
        difference beyond the noise).
    """
    per_subject, per_seed = subject_means(results, [m for m in metrics if m != "f1_trial_pooled"])
    rows = []
    for task in per_subject["task"].unique():
        subj, seeds = per_subject[per_subject["task"] == task], per_seed[per_seed["task"] == task]
        for metric in metrics:
            wide = subj.pivot(index="subject", columns="method", values=metric)
            family = []
            for a, b in contrasts:
                if a not in wide or b not in wide:
                    continue
                row = dict(task=task, metric=metric, contrast=contrast_label(a, b), a=a, b=b)
                row.update(paired_difference(wide[a], wide[b], level))
                row.update(n_seeds=int(seeds["seed"].nunique()), seed_sd=_seed_diff_spread(seeds, a, b, metric))
                family.append(row)
            for key, p in (("p_holm", "p_t"), ("p_wilcoxon_holm", "p_wilcoxon")):
                for row, adj in zip(family, holm([r[p] for r in family])):
                    row[key] = adj
            rows += family
    table = pd.DataFrame(rows)
    if len(table):
        table["inside_noise"] = ~((table["ci_low"] > 0) | (table["ci_high"] < 0))
    return table


# --- chance ----------------------------------------------------------------------------------

def _band_from_pmf(pmf: np.ndarray, values: np.ndarray, level: float) -> tuple[float, float]:
    """Central interval of a discrete distribution, as :func:`scipy.stats.binom.interval` takes it."""
    cdf = np.cumsum(pmf)
    cdf /= cdf[-1]
    q = np.array([(1 - level) / 2, (1 + level) / 2])
    idx = np.searchsorted(cdf, q - 1e-10, side="left")  # smallest value whose CDF reaches q
    return float(values[idx[0]]), float(values[min(idx[1], len(values) - 1)])


def _chance_band(n, p, level, n_sim, seed, max_grid):
    if np.all(n == n[0]) and np.all(p == p[0]):
        lo, hi = stats.binom.interval(level, len(n) * n[0], p[0])
        return float(lo / (len(n) * n[0])), float(hi / (len(n) * n[0])), "exact binomial"
    lcm = math.lcm(*(int(k) for k in n))
    if len(n) * lcm + 1 <= max_grid:
        # exact: the sum of k_i / n_i is an integer number of steps 1 / lcm; equal (n, p) merged.
        pmf = np.ones(1)
        for (ni, pi), count in pd.Series(list(zip(n, p))).value_counts(sort=False).items():
            part = np.zeros(count * lcm + 1)
            part[:: lcm // ni] = stats.binom.pmf(np.arange(count * ni + 1), count * ni, pi)
            pmf = np.clip(signal.fftconvolve(pmf, part), 0, None)
        lo, hi = _band_from_pmf(pmf, np.arange(len(pmf)) / (lcm * len(n)), level)
        return lo, hi, "exact convolution"
    rng = np.random.default_rng(seed)
    means = (rng.binomial(n, p, size=(n_sim, len(n))) / n).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi), f"Monte Carlo ({n_sim} draws, seed {seed})"


def chance_band(n_trials, p=0.5, level: float = 0.95, n_sim: int = 200_000, seed: int = 0,
                max_grid: int = 4_000_000) -> tuple[float, float]:
    """Central ``level`` interval of the mean over subjects of a guessing classifier's accuracy.

    Subject i has ``n_trials[i]`` test trials, each guessed right with probability ``p[i]``
    (0.5, or that subject's majority rate), independently: its accuracy is
    Binomial(n_i, p_i) / n_i, and the band is for the mean of those accuracies over the S subjects.

    Parameters
    ----------
    n_trials : array-like of int
        Test trials per subject (one pass over its trials: repeated seeds do not add trials).
    p : float or array-like
        Probability of a right guess, per subject or shared.
    level : float
        Coverage of the band.
    n_sim, seed : int
        Draws and seed of the Monte Carlo fallback.
    max_grid : int
        Largest grid for the exact computation with unequal trial counts.

    Returns
    -------
    (low, high) : tuple of float

    Notes
    -----
    Exact whenever possible: with equal n and p it is Binomial(S·n, p) / (S·n)
    (:func:`scipy.stats.binom.interval`); with unequal n it is the exact distribution of
    ``Σ k_i / n_i`` on the grid of steps 1 / lcm(n_i), a convolution of the per-subject binomial
    pmfs (FFT, negligible rounding), with the interval taken as ``binom.interval`` takes it.
    Only when that grid has more than ``max_grid`` points is it a Monte Carlo estimate with a
    fixed seed. The single-subject interval is :func:`kdlib.evaluate.chance_interval`.
    """
    n = np.atleast_1d(np.asarray(n_trials, dtype=int))
    p = np.broadcast_to(np.asarray(p, dtype=float), n.shape)
    if len(n) == 0 or np.any(n < 1):
        raise ValueError(f"n_trials must be positive trial counts, got {n.tolist()}")
    return _chance_band(n, p, level, n_sim, seed, max_grid)[:2]


def chance_table(results: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Chance bands for a mean over subjects, per task, beside the majority-class baseline.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table with ``n_trials`` and ``majority_trial``.
    level : float

    Returns
    -------
    pandas.DataFrame
        One row per task: ``n_subjects``, ``n_trials_min``, ``n_trials_max`` (test trials per
        subject and seed), ``majority_mean`` (mean over subjects of the majority-class accuracy),
        ``chance_low, chance_high`` (:func:`chance_band` with p = 0.5), ``majority_low,
        majority_high`` (each subject guessing right at its majority rate: the noise around the
        majority baseline), ``single_low, single_high`` (one subject with the median number of
        trials, p = 0.5) and ``band_method`` (how the p = 0.5 band was computed).
    """
    per_subject, _ = subject_means(results, ())
    rows = []
    for task, part in per_subject.groupby("task", sort=False):
        one = part.groupby("subject", sort=False)[["n_trials", "majority_trial"]].first()
        n = np.rint(one["n_trials"].to_numpy()).astype(int)
        p_major = one["majority_trial"].to_numpy()
        lo, hi, how = _chance_band(n, np.full(len(n), 0.5), level, 200_000, 0, 4_000_000)
        m_lo, m_hi = chance_band(n, p_major, level)
        n_mid = int(np.median(n))
        s_lo, s_hi = (x / n_mid for x in stats.binom.interval(level, n_mid, 0.5))
        rows.append(dict(task=task, n_subjects=len(n), n_trials_min=int(n.min()), n_trials_max=int(n.max()),
                         majority_mean=float(p_major.mean()), chance_low=lo, chance_high=hi,
                         majority_low=m_lo, majority_high=m_hi, single_low=s_lo, single_high=s_hi,
                         band_method=how))
    return pd.DataFrame(rows)
