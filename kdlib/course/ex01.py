"""Checks of the exercises of ``notebooks/01_data_preparation.ipynb``.

- ``01.1`` :func:`check_changed_by_rule` -- per subject, how many trials change class when a
  rating equal to the threshold counts as high (``'>='``) instead of low (``'>'``), against
  :func:`kdlib.data.windows.binarize`'s two rules.
- ``01.2`` :func:`check_overlapping_test_windows` -- how many test windows of a fold share
  samples with a training window of the same trial (what overlapping windows add to the leak of
  a window-level split), against a brute-force count over all (test, training) pairs.
- ``01.3`` :func:`check_between_window_share` -- per channel, the share of the windows'
  variance that lies between the window means (offsets and slow drift) rather than within the
  windows, against the law of total variance computed with ``numpy.var``.

Every check builds its own small seeded inputs (CPU, well under a second) and computes the
expected values with kdlib or an independent formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdlib.course import check, expect
from kdlib.data.windows import binarize

__all__ = ["check_changed_by_rule", "check_overlapping_test_windows", "check_between_window_share"]


def _ratings_table(rng: np.random.Generator) -> pd.DataFrame:
    """Three subjects' trials: s01 with ratings on the threshold, s02 with near misses, s03 without."""
    s01 = np.array([5.0, 5.0, 4.0, 6.5, 5.0, 9.0, 1.0, 5.5], np.float32)  # three ratings of exactly 5
    s02 = np.array([4.99, 5.01, 5.0, 4.6, 5.4, 7.2], np.float32)  # one 5, near misses around it
    s03 = rng.uniform(1, 9, 7).astype(np.float32)
    s03[np.isclose(s03, 5.0, atol=0.05)] = 3.0  # no rating near the threshold: this subject changes none
    ratings = np.concatenate([s01, s02, s03])
    subject = ["s01"] * len(s01) + ["s02"] * len(s02) + ["s03"] * len(s03)
    trial = np.concatenate([np.arange(len(s)) + 1 for s in (s01, s02, s03)])
    order = rng.permutation(len(ratings))  # rows not grouped by subject, as after a merge
    return pd.DataFrame({"subject": np.array(subject)[order], "trial": trial[order],
                         "valence": ratings[order], "arousal": ratings[::-1][order]})


def _expected_changes(table: pd.DataFrame, task: str, threshold: float) -> pd.Series:
    changed = binarize(table[task].to_numpy(), threshold, ">") != binarize(table[task].to_numpy(), threshold, ">=")
    return pd.Series(changed.astype(int), index=table.index).groupby(table["subject"]).sum()


@check("01.1", "trials that change class with the rule")
def check_changed_by_rule(changed_by_rule):
    """Check ``changed_by_rule(table, task, threshold)`` -> trials per subject whose label differs
    between the rules ``'>'`` and ``'>='``, against :func:`kdlib.data.windows.binarize`.

    Parameters
    ----------
    changed_by_rule : callable
        The student's function.
    """
    table = _ratings_table(np.random.default_rng(0))
    for task, threshold in (("valence", 5.0), ("arousal", 5.0), ("valence", 9.0), ("valence", 4.0)):
        want = _expected_changes(table, task, threshold)
        got = changed_by_rule(table.copy(), task, threshold)
        expect(isinstance(got, pd.Series), f"expected a pandas Series indexed by subject, got {type(got).__name__}")
        expect(sorted(got.index) == sorted(want.index),
               f"with {task} and threshold {threshold:g}: expected one entry per subject {sorted(want.index)}, "
               f"got {sorted(got.index)} (hint: a subject whose trials all keep their class counts 0)")
        got = got.reindex(want.index)
        expect(np.array_equal(got.to_numpy(dtype=float), want.to_numpy(dtype=float)),
               f"with {task} and threshold {threshold:g}: got {got.to_dict()}, expected {want.to_dict()} "
               "(hint: only a rating equal to the threshold is labelled differently by '>' and '>=')")


def _overlap_case(rng: np.random.Generator, stride_s: float, window_s: float = 4.0):
    """Windows of 4 trials of 20 s, a random window-level split (some test windows touch, some overlap)."""
    starts = np.arange(0.0, 20.0 - window_s + 1e-9, stride_s)  # (n_per_trial,)
    trial = np.repeat(np.arange(4) + 1, len(starts))  # (N,)
    start_s = np.tile(starts, 4)  # (N,)
    order = rng.permutation(len(trial))
    return trial, start_s, np.sort(order[len(order) // 4:]), np.sort(order[: len(order) // 4])


def _expected_overlaps(trial, start_s, train, test, window_s) -> int:
    same = trial[test][:, None] == trial[train][None, :]  # (n_test, n_train)
    overlap = np.abs(start_s[test][:, None] - start_s[train][None, :]) < window_s  # [s, s + w) intersect
    return int(np.any(same & overlap, axis=1).sum())


@check("01.2", "test windows that overlap training windows")
def check_overlapping_test_windows(overlapping_test_windows):
    """Check ``overlapping_test_windows(trial, start_s, train, test, window_s)`` -> the number of
    test windows sharing samples with a training window of the same trial, by brute force.

    Parameters
    ----------
    overlapping_test_windows : callable
        The student's function.
    """
    rng = np.random.default_rng(1)
    for stride_s in (4.0, 1.0, 2.5):  # no overlap (windows only touch), heavy overlap, partial overlap
        trial, start_s, train, test = _overlap_case(rng, stride_s)
        want = _expected_overlaps(trial, start_s, train, test, 4.0)
        got = overlapping_test_windows(trial, start_s, train, test, 4.0)
        expect(np.ndim(got) == 0 and float(got) == int(got),
               f"expected one whole number (test windows), got {got!r}")
        hint = ("windows that only touch (start 4 s apart) share no sample; a window covers [start, start + w)"
                if stride_s == 4.0 else "count test windows (each once), and only against training windows "
                "of the same trial")
        expect(int(got) == want, f"with 4 s windows every {stride_s:g} s: got {int(got)}, expected {want} ({hint})")
    trial, start_s, train, test = _overlap_case(rng, 1.0)
    trial = trial.copy()
    trial[train] += 10  # the training windows come from other trials: nothing can overlap
    got = overlapping_test_windows(trial, start_s, train, test, 4.0)
    expect(int(got) == 0, f"with training and test windows from different trials: got {got}, expected 0 "
           "(hint: windows of different trials never share samples, whatever their start times)")


def _between_share(x: np.ndarray) -> np.ndarray:
    """Law of total variance, per channel: var of the window means / var of all samples."""
    n, c, t = x.shape
    return np.var(x.mean(axis=2), axis=0) / np.var(x.transpose(1, 0, 2).reshape(c, n * t), axis=1)


@check("01.3", "variance between windows")
def check_between_window_share(between_window_share):
    """Check ``between_window_share(x)``, ``(N, C, T) -> (C,)``, the share of each channel's variance
    that lies between the window means, against the law of total variance.

    Parameters
    ----------
    between_window_share : callable
        The student's function.
    """
    rng = np.random.default_rng(2)
    wiggles = rng.standard_normal((6, 3, 50))  # (N, C, T) within-window signal
    offsets = np.array([0.0, 1.0, 10.0])[None, :, None] * rng.standard_normal((6, 1, 1))  # (N, C, 1)
    cases = {"offsets of 0, 1 and 10 per channel": wiggles + offsets,
             "a constant per window (all variance between windows)":
                 np.broadcast_to(offsets + rng.standard_normal((6, 3, 1)), (6, 3, 50)) + 5.0,
             "windows with a common mean (little between)": wiggles - wiggles.mean(axis=2, keepdims=True)
             + np.array([1.0, -2.0, 3.0])[None, :, None]}
    for name, x in cases.items():
        x = np.asarray(x, dtype=np.float64)
        want = _between_share(x)  # (C,)
        got = np.asarray(between_window_share(x.copy()), dtype=np.float64)
        expect(got.shape == (3,), f"with {name}: expected one share per channel, shape (3,), got {got.shape} "
               "(hint: average over windows and samples, keep the channel axis)")
        expect(np.allclose(got, want, atol=1e-6),
               f"with {name}: got {np.round(got, 4).tolist()}, expected {np.round(want, 4).tolist()} "
               "(hint: variance of the window means over the variance of all samples of the channel)")
