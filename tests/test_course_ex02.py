"""Notebook 02's graded exercises (kdlib.course.ex02): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdlib import paths
from kdlib.course import CheckFailed, ex02
from kdlib.course.editions import exercises
from kdlib.stats import t_interval

NB = paths.notebooks_dir() / "02_fusion_teacher.ipynb"
CHECKS = {"02.1": ex02.check_gap_interval, "02.2": ex02.check_gates_by_class,
          "02.3": ex02.check_interaction_ratio, "02.4": ex02.check_seen_share}
NAMES = {"02.1": "gap_interval", "02.2": "gates_by_class", "02.3": "interaction_ratio", "02.4": "seen_share"}


def test_the_notebook_has_these_four_exercises_with_their_checks():
    found = exercises(NB)
    assert [e.exercise_id for e in found] == list(CHECKS)
    for e in found:
        assert f"ex02.{CHECKS[e.exercise_id].__name__}({NAMES[e.exercise_id]})" in e.check and e.notes == 1


def _gap_unpaired(scores, a, b, metric):  # difference of the means over all folds of each model
    da, db = scores.loc[scores.model == a, metric], scores.loc[scores.model == b, metric]
    mean = da.mean() - db.mean()
    half = 1.96 * np.sqrt(da.var() / len(da) + db.var() / len(db))
    return (mean, mean - half, mean + half)


def _gap_reversed(scores, a, b, metric):  # b - a
    wide = scores.pivot(index="fold", columns="model", values=metric)
    return t_interval((wide[b] - wide[a]).dropna())


def _gap_normal(scores, a, b, metric):  # 1.96 instead of the t quantile
    d = scores.pivot(index="fold", columns="model", values=metric).eval(f"{a} - {b}").dropna()
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return (d.mean(), d.mean() - half, d.mean() + half)


def _gates_reversed(maps, labels):  # low minus high
    labels = np.asarray(labels)
    if (labels == 1).all() or (labels == 0).all():
        raise ValueError("one class")
    return {k: g[labels == 0].mean(0) - g[labels == 1].mean(0) for k, g in maps.items()}


def _gates_over_all(maps, labels):  # high minus the mean of all windows
    labels = np.asarray(labels)
    if (labels == 1).all() or (labels == 0).all():
        raise ValueError("one class")
    return {k: g[labels == 1].mean(0) - g.mean(0) for k, g in maps.items()}


def _gates_nan_for_missing_class(maps, labels):  # right differences, but NaN instead of an error
    labels = np.asarray(labels)
    out = {}
    for k, g in maps.items():
        high = g[labels == 1].mean(0) if (labels == 1).any() else np.full(g.shape[1:], np.nan)
        low = g[labels == 0].mean(0) if (labels == 0).any() else np.full(g.shape[1:], np.nan)
        out[k] = high - low
    return out


def _ratio_of_fused(teacher, eeg, eog):  # ||fused|| / ||z_N||: 1 plus something
    with torch.no_grad():
        out = teacher(eeg, eog)
    z = torch.cat([out.eeg_depths[-1], out.eog_depths[-1]], dim=-1)
    return out.fused.flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1)


def _ratio_first_gate(teacher, eeg, eog):  # only the first gated pair
    with torch.no_grad():
        out = teacher(eeg, eog)
    z = [torch.cat([e, o], dim=-1) for e, o in zip(out.eeg_depths, out.eog_depths)]
    if not out.gates:
        return torch.zeros(eeg.shape[0])
    j = teacher.fusion.gating.pairs[0][1]
    return (out.gates[0] * z[j - 1]).flatten(1).norm(dim=1) / z[-1].flatten(1).norm(dim=1)


def _ratio_pooled(teacher, eeg, eog):  # norms of the mean-pooled features
    with torch.no_grad():
        out = teacher(eeg, eog)
    z = torch.cat([out.eeg_depths[-1], out.eog_depths[-1]], dim=-1)
    return (out.fused - z).mean(1).norm(dim=1) / z.mean(1).norm(dim=1)


def _seen_trials(teacher_groups, groups, test):  # share of test trials, not windows
    trials = np.unique(np.asarray(groups)[test])
    return float(np.isin(trials, teacher_groups).mean())


def _seen_indices(teacher_groups, groups, test):  # compares window indices with trial ids
    return float(np.isin(np.asarray(test), teacher_groups).mean())


def _seen_count(teacher_groups, groups, test):  # a count, not a share
    return int(np.isin(np.asarray(groups)[test], teacher_groups).sum())


@pytest.mark.parametrize("exercise_id, wrong", [
    ("02.1", _gap_unpaired), ("02.1", _gap_reversed), ("02.1", _gap_normal),
    ("02.2", _gates_reversed), ("02.2", _gates_over_all), ("02.2", _gates_nan_for_missing_class),
    ("02.3", _ratio_of_fused), ("02.3", _ratio_first_gate), ("02.3", _ratio_pooled),
    ("02.4", _seen_trials), ("02.4", _seen_indices), ("02.4", _seen_count),
])
def test_plausible_wrong_answers_fail(exercise_id, wrong):
    with pytest.raises(CheckFailed, match=f"exercise {exercise_id}"):
        CHECKS[exercise_id](wrong)
