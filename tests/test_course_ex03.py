"""Notebook 03's graded exercises (kdlib.course.ex03): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kdlib.course import CheckFailed, editions, ex03
from kdlib.distill import linear_cka

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_student_alignment.ipynb"
CHECKS = {"03.1": ("pool_teacher", ex03.check_pool_teacher), "03.2": ("kd_gradient", ex03.check_kd_gradient),
          "03.3": ("linear_cka", ex03.check_linear_cka), "03.4": ("paired_gain", ex03.check_paired_gain)}


def solution(exercise_id: str):
    """The function the notebook's solution cell defines, run in a fresh namespace as the editions do."""
    return editions.exercise_function(NOTEBOOK, exercise_id)


def _softmax_gap(z_s, z_t, T):
    return torch.softmax(z_s / T, dim=-1) - torch.softmax(z_t / T, dim=-1)  # (B, C)


def _uncentred_cka(x, y):
    with np.errstate(invalid="ignore"):  # 0 / 0 for a constant side: the check must say so
        return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _by_position(scores, a, b, metric="accuracy"):
    return pd.Series(scores[scores.model == a][metric].to_numpy() - scores[scores.model == b][metric].to_numpy())


WRONG = {
    "03.1": [(lambda t: (t[..., : t.shape[-1] // 2] + t[..., t.shape[-1] // 2:]) / 2, "EEG half with feature k"),
             (lambda t: t[..., t.shape[-1] // 2:], "2k and 2k\\+1"),
             (lambda t: t[..., ::2], "2k and 2k\\+1")],  # every other feature, not the mean of a pair
    "03.2": [(lambda z_s, z_t, T: _softmax_gap(z_s, z_t, T) / (T * len(z_s)), "T = 2"),  # the T²-less loss's gradient
             (lambda z_s, z_t, T: T * _softmax_gap(z_s, z_t, T), "1/B of the batch mean"),
             (lambda z_s, z_t, T: T ** 2 * _softmax_gap(z_s, z_t, T) / len(z_s), "T = 2"),  # chain rule's 1/T forgotten
             (lambda z_s, z_t, T: -T * _softmax_gap(z_s, z_t, T) / len(z_s), "wrong sign")],
    "03.3": [(_uncentred_cka, "noisy linear map"),
             (lambda x, y: linear_cka(x, y) ** 0.5, "noisy linear map"),
             (lambda x, y: float(np.linalg.norm((y - y.mean(0)).T @ (x - x.mean(0))) ** 2
                                 / (np.linalg.norm(x - x.mean(0)) ** 2 * np.linalg.norm(y - y.mean(0)) ** 2)), "itself"),
             (lambda x, y: _uncentred_cka(x - x.mean(0), y - y.mean(0)), "constant")],  # 0 / 0 for a constant side
    "03.4": [(_by_position, "by their fold"),
             (lambda s, a, b, metric="accuracy": -solution("03.4")(s, a, b, metric), "sign is reversed"),
             (lambda s, a, b, metric="accuracy": solution("03.4")(s, a, b, "accuracy"), "f1"),
             (lambda s, a, b, metric="accuracy": float(solution("03.4")(s, a, b, metric).mean()), "Series")],
}


def test_every_exercise_of_the_notebook_has_its_check():
    assert [e.exercise_id for e in editions.exercises(NOTEBOOK)] == sorted(CHECKS)
    assert all(check.exercise_id == i for i, (_, check) in CHECKS.items())  # registered under its id


@pytest.mark.parametrize("exercise_id,wrong,message", [(i, f, m) for i, cases in WRONG.items() for f, m in cases],
                         ids=lambda v: v if isinstance(v, str) and "." in v else "")
def test_plausible_wrong_answers_fail(exercise_id, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        CHECKS[exercise_id][1](wrong)


