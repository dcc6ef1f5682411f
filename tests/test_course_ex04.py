"""Notebook 04's graded exercises (kdlib.course.ex04): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from kdlib import distill as kd
from kdlib import paths
from kdlib.course import CheckFailed, ex04, registered_checks
from kdlib.course.editions import exercise_function
from kdlib.distill import feedback as fbmod

NOTEBOOK = paths.notebooks_dir() / "04_dynamic_feedback_distillation.ipynb"

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHECKS = {"04.1": (ex04.check_meta_share, "meta_share"), "04.2": (ex04.check_feedback_gradient, "feedback_gradient"),
          "04.3": (ex04.check_metric_schedule, "metric_schedule"),
          "04.4": (ex04.check_feedback_activity, "feedback_activity"), "04.5": (ex04.check_compare_runs, "compare_runs")}


def solution(exercise_id: str):
    """The notebook's solution function of one exercise, defined in a fresh namespace."""
    return exercise_function(NOTEBOOK, exercise_id)


def fails(check, fn, match: str | None = None) -> str:
    with pytest.raises(CheckFailed) as info:
        check(fn)
    if match is not None:
        assert match in str(info.value), str(info.value)
    return str(info.value)


def test_every_exercise_of_the_notebook_has_its_check_registered():
    registered = registered_checks()
    for exercise_id, (check, _) in CHECKS.items():
        assert registered[exercise_id] is check


# --- 04.1 -------------------------------------------------------------------------------------

def _feedback_rows(steps):
    return steps[steps["phase"] == "feedback"]


def share_over_ce(steps):  # a ratio to the CE's norm, not a share of the total
    fb = _feedback_rows(steps)
    return float((fb["feedback_grad"] / fb["teacher_ce_grad"]).mean())


def share_pooled(steps):  # the norms summed over the steps, then one share
    fb = _feedback_rows(steps)
    return float(fb["feedback_grad"].sum() / (fb["teacher_ce_grad"] + fb["feedback_grad"]).sum())


def share_teaching_rows_as_zero(steps):  # every row averaged, teaching rows counted as 0
    share = steps["feedback_grad"] / (steps["teacher_ce_grad"] + steps["feedback_grad"])
    return float(share.fillna(0.0).mean())


@pytest.mark.parametrize("wrong", [share_over_ce, share_pooled, share_teaching_rows_as_zero])
def test_meta_share_catches_wrong_answers(wrong):
    fails(ex04.check_meta_share, wrong)


# --- 04.2 -------------------------------------------------------------------------------------

def gradient_always_with_ce(terms, params, fb):  # ignores fb.teacher_ce
    return list(torch.autograd.grad(terms.teacher_ce + fb.lam * terms.lookahead_ce, params))


def gradient_without_lambda(terms, params, fb):  # the look-ahead term unweighted
    loss = terms.lookahead_ce + (terms.teacher_ce if fb.teacher_ce else 0.0)
    return list(torch.autograd.grad(loss, params))


def gradient_of_the_lookahead_only(terms, params, fb):
    return list(torch.autograd.grad(fb.lam * terms.lookahead_ce, params))


@pytest.mark.parametrize("wrong", [gradient_always_with_ce, gradient_without_lambda, gradient_of_the_lookahead_only])
def test_feedback_gradient_catches_wrong_answers(wrong):
    fails(ex04.check_feedback_gradient, wrong)


def test_the_feedback_gradient_check_follows_the_switch_in_kdlib():
    """Its reference is kd.feedback_step itself: with the switch off, the solution that honours it passes
    and the one that ignores it fails on the teacher_ce=False cases by name."""
    message = fails(ex04.check_feedback_gradient, gradient_always_with_ce)
    assert "teacher_ce = False" in message


# --- 04.3 -------------------------------------------------------------------------------------

def schedule_without_running_means(history, alpha, temperature, gc):
    gap = (history["teacher_val_acc"] - history["val_acc"]).to_numpy()[:-1]
    f = np.clip(1 + np.outer(gap, [gc.alpha_gain, gc.temperature_gain]), *gc.scale_range)
    return alpha * np.r_[1.0, f[:, 0]], temperature * np.r_[1.0, f[:, 1]]


def schedule_compounding(history, alpha, temperature, gc):  # rescales the previous epoch's values
    run = history[["teacher_val_acc", "val_acc"]].ewm(alpha=1 - gc.momentum, adjust=False).mean().to_numpy()
    f = np.clip(1 + np.outer(run[:-1, 0] - run[:-1, 1], [gc.alpha_gain, gc.temperature_gain]), *gc.scale_range)
    return alpha * np.r_[1.0, np.cumprod(f[:, 0])], temperature * np.r_[1.0, np.cumprod(f[:, 1])]


def schedule_off_by_one(history, alpha, temperature, gc):  # epoch 1 already rescaled
    run = history[["teacher_val_acc", "val_acc"]].ewm(alpha=1 - gc.momentum, adjust=False).mean().to_numpy()
    f = np.clip(1 + np.outer(run[:, 0] - run[:, 1], [gc.alpha_gain, gc.temperature_gain]), *gc.scale_range)
    return alpha * f[:, 0], temperature * f[:, 1]


@pytest.mark.parametrize("wrong", [schedule_without_running_means, schedule_compounding, schedule_off_by_one])
def test_metric_schedule_catches_wrong_answers(wrong):
    fails(ex04.check_metric_schedule, wrong)


def test_the_metric_checks_reference_is_what_kdlib_trains_with():
    """The check's reference schedule equals kdlib's own guidance (the _Guidance that distill_feedback uses)."""
    rng = np.random.default_rng(0)
    for gc in (kd.GuidanceConfig(), kd.GuidanceConfig(alpha_gain=5.0, momentum=0.0, scale_range=(0.5, 1.5))):
        config = kd.DistillConfig(alpha=0.7, temperature=3.0, feedback="metric", guidance_config=gc)
        t_acc, s_acc = rng.uniform(0.4, 0.9, 7), rng.uniform(0.4, 0.9, 7)
        guide, alphas, temps = fbmod._Guidance(config), [], []
        for t, s in zip(t_acc, s_acc):  # as on_epoch_end: log the epoch's values, then set the next epoch's
            alphas.append(guide.alpha)
            temps.append(guide.temperature)
            guide.end_epoch(t, s)
            guide.next_epoch()
        want_a, want_t = ex04._schedule(t_acc, s_acc, 0.7, 3.0, gc)
        assert np.allclose(alphas, want_a, atol=1e-12) and np.allclose(temps, want_t, atol=1e-12)


# --- 04.4 -------------------------------------------------------------------------------------

def activity_over_all_rows(steps):  # teaching rows' zero updates averaged in
    fb = _feedback_rows(steps)
    return len(fb), float(steps["teacher_update"].mean()), float(fb["feedback_s"].sum())


def activity_counting_moves(steps):  # a feedback step that did not move the teacher is not counted
    fb = steps[steps["teacher_update"] > 0]
    return len(fb), float(fb["teacher_update"].mean()), float(fb["feedback_s"].sum())


def activity_mean_seconds(steps):  # the mean time of a feedback step, not their total
    fb = _feedback_rows(steps)
    return len(fb), float(fb["teacher_update"].mean()), float(fb["feedback_s"].mean())


@pytest.mark.parametrize("wrong", [activity_over_all_rows, activity_counting_moves, activity_mean_seconds])
def test_feedback_activity_catches_wrong_answers(wrong):
    fails(ex04.check_feedback_activity, wrong)


# --- 04.5 -------------------------------------------------------------------------------------

def compare_a_minus_b(scores_a, scores_b, metric="accuracy"):  # the sign the wrong way round
    both = scores_a.merge(scores_b, on=["model", "fold"], suffixes=("_a", "_b")).groupby("model")
    return (both[f"{metric}_a"].mean() - both[f"{metric}_b"].mean()).to_frame("diff").assign(
        time_ratio=both["seconds_b"].mean() / both["seconds_a"].mean())


def compare_unpaired(scores_a, scores_b, metric="accuracy"):  # means over all folds of each run, not the shared ones
    a, b = scores_a.groupby("model"), scores_b.groupby("model")
    return pd.DataFrame({"diff": b[metric].mean() - a[metric].mean(),
                         "time_ratio": b["seconds"].mean() / a["seconds"].mean()})


def compare_time_inverted(scores_a, scores_b, metric="accuracy"):
    both = scores_a.merge(scores_b, on=["model", "fold"], suffixes=("_a", "_b")).groupby("model")
    return (both[f"{metric}_b"].mean() - both[f"{metric}_a"].mean()).to_frame("diff").assign(
        time_ratio=both["seconds_a"].mean() / both["seconds_b"].mean())


@pytest.mark.parametrize("wrong", [compare_a_minus_b, compare_unpaired, compare_time_inverted])
def test_compare_runs_catches_wrong_answers(wrong):
    fails(ex04.check_compare_runs, wrong)


def test_checks_leave_the_callers_random_stream_alone():
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    ex04.check_feedback_gradient(solution("04.2"))
    assert torch.equal(torch.rand(3), want)
