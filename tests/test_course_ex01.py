"""Notebook 01's graded exercises (kdlib.course.ex01): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdlib import paths
from kdlib.course import CheckFailed, ex01
from kdlib.course.editions import exercises
from kdlib.data.windows import binarize

NB = paths.notebooks_dir() / "01_data_preparation.ipynb"
CHECKS = {"01.1": (ex01.check_changed_by_rule, "changed_by_rule"),
          "01.2": (ex01.check_overlapping_test_windows, "overlapping_test_windows"),
          "01.3": (ex01.check_between_window_share, "between_window_share")}


def test_the_notebook_has_these_three_exercises_with_their_checks():
    found = exercises(NB)
    assert [e.exercise_id for e in found] == list(CHECKS)
    for e in found:
        check, name = CHECKS[e.exercise_id]
        assert f"ex01.{check.__name__}({name})" in e.check and e.notes == 1


def _changed_counts_high(table, task, threshold):  # counts the high trials, not the changed ones
    high = binarize(table[task].to_numpy(), threshold, ">=")
    return pd.Series(high, index=table.index).groupby(table["subject"]).sum()


def _changed_rounded(table, task, threshold):  # rounds the ratings first: 4.99 and 5.01 "change"
    changed = np.isclose(np.round(table[task].to_numpy()), threshold)
    return pd.Series(changed.astype(int), index=table.index).groupby(table["subject"]).sum()


def _changed_drops_zero(table, task, threshold):  # subjects without a change disappear
    changed = table[task].to_numpy() == threshold
    return table[changed].groupby("subject").size()


def _overlap_le(trial, start_s, train, test, window_s):  # windows that only touch count as overlapping
    same = trial[test][:, None] == trial[train][None, :]
    return int(np.any(same & (np.abs(start_s[test][:, None] - start_s[train][None, :]) <= window_s), axis=1).sum())


def _overlap_any_trial(trial, start_s, train, test, window_s):  # ignores the trial
    return int(np.any(np.abs(start_s[test][:, None] - start_s[train][None, :]) < window_s, axis=1).sum())


def _overlap_pairs(trial, start_s, train, test, window_s):  # counts (test, train) pairs
    same = trial[test][:, None] == trial[train][None, :]
    return int((same & (np.abs(start_s[test][:, None] - start_s[train][None, :]) < window_s)).sum())


def _within_share(x):  # the complement: mean within-window variance over the total
    return x.var(axis=2).mean(axis=0) / x.transpose(1, 0, 2).reshape(x.shape[1], -1).var(axis=1)


def _share_over_channels(x):  # pools the channels: one number
    return np.full(x.shape[1], np.var(x.mean(axis=2)) / np.var(x))


def _share_of_sds(x):  # standard deviations instead of variances
    return np.std(x.mean(axis=2), axis=0) / x.transpose(1, 0, 2).reshape(x.shape[1], -1).std(axis=1)


@pytest.mark.parametrize("exercise_id, wrong", [
    ("01.1", _changed_counts_high), ("01.1", _changed_rounded), ("01.1", _changed_drops_zero),
    ("01.2", _overlap_le), ("01.2", _overlap_any_trial), ("01.2", _overlap_pairs),
    ("01.3", _within_share), ("01.3", _share_over_channels), ("01.3", _share_of_sds),
])
def test_plausible_wrong_answers_fail(exercise_id, wrong):
    with pytest.raises(CheckFailed, match=f"exercise {exercise_id}"):
        CHECKS[exercise_id][0](wrong)


