"""Notebook 05's graded exercises (kdlib.course.ex05): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from kdlib.course import CheckFailed, editions, ex05

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_evaluation.ipynb"
CHECKS = {"05.1": ("chance_band_of_mean", ex05.check_chance_band), "05.2": ("loso_split", ex05.check_loso_split),
          "05.3": ("trial_vote", ex05.check_trial_vote)}


def solution(exercise_id: str):
    """The function the notebook's solution cell defines, run in a fresh namespace as the editions do."""
    return editions.exercise_function(NOTEBOOK, exercise_id)


def _one_subject(n_subjects, n_trials, p=0.5, level=0.95):
    low, high = binom.interval(level, n_trials, p)
    return low / n_trials, high / n_trials


def _normal(n_subjects, n_trials, p=0.5, level=0.95):
    half = 1.96 * np.sqrt(p * (1 - p) / (n_subjects * n_trials))
    return p - half, p + half


def _by_trial(subject):  # leave one *trial* out: windows of one subject stay on both sides
    return [(np.flatnonzero(np.arange(len(subject)) % 6 != k), np.flatnonzero(np.arange(len(subject)) % 6 == k))
            for k in range(6)]


def _blocks(subject):  # contiguous blocks of rows: right only when the windows are sorted by subject
    return [(np.setdiff1d(np.arange(len(subject)), block), block)
            for block in np.array_split(np.arange(len(subject)), len(np.unique(subject)))]


def _hard_vote(prob, groups):
    return np.array([np.bincount(prob[groups == t].argmax(1), minlength=prob.shape[1]).argmax()
                     for t in np.unique(groups)])


WRONG = {
    "05.1": [(_one_subject, "one subject's interval"), (_normal, "normal approximation"),
             (lambda s, n, p=0.5, level=0.95: tuple(v * s for v in solution("05.1")(s, n, p, level)), "not an interval"),
             (lambda s, n, p=0.5, level=0.95: solution("05.1")(s, n, p), "level = 0.9")],  # level ignored
    "05.2": [(lambda subject: [(np.arange(len(subject)), np.flatnonzero(subject == s)) for s in np.unique(subject)],
              "a leak"),
             (_by_trial, "not a trial or a window"), (_blocks, "one subject"),
             (lambda subject: solution("05.2")(subject)[:-1], "one per subject")],
    "05.3": [(_hard_vote, "hard labels"),
             (lambda prob, groups: pd.DataFrame(prob).groupby(groups, sort=False).mean().to_numpy().argmax(1), "order"),
             (lambda prob, groups: prob.argmax(1), "one per trial"),
             (lambda prob, groups: np.array([prob[groups == t][0].argmax() for t in np.unique(groups)]), "votes")],
}


def test_every_exercise_of_the_notebook_has_its_check():
    assert [e.exercise_id for e in editions.exercises(NOTEBOOK)] == sorted(CHECKS)
    assert all(check.exercise_id == i for i, (_, check) in CHECKS.items())  # registered under its id


@pytest.mark.parametrize("exercise_id,wrong,message", [(i, f, m) for i, cases in WRONG.items() for f, m in cases],
                         ids=lambda v: v if isinstance(v, str) and "." in v else "")
def test_plausible_wrong_answers_fail(exercise_id, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        CHECKS[exercise_id][1](wrong)


