"""Checks of the exercises of ``notebooks/04_dynamic_feedback_distillation.ipynb``.

- ``04.1`` :func:`check_meta_share` -- from a per-step log like ``result.steps``, the meta term's
  share of the teacher's gradient, ``feedback_grad / (teacher_ce_grad + feedback_grad)``, averaged
  over the feedback steps; against a direct computation on logs written by :func:`kd.feedback_step
  <kdlib.distill.feedback.feedback_step>` with ``lam`` = 0, 1 and 10.
- ``04.2`` :func:`check_feedback_gradient` -- the gradient of the teacher's feedback loss from the
  two terms of :func:`kd.meta_objective <kdlib.distill.feedback.meta_objective>`, honouring
  ``FeedbackConfig.lam`` and ``FeedbackConfig.teacher_ce``; against the update that
  :func:`kd.feedback_step <kdlib.distill.feedback.feedback_step>` makes with plain SGD (lr 1, no
  clipping), with and without the teacher's own CE.
- ``04.3`` :func:`check_metric_schedule` -- the ``alpha`` and ``T`` each epoch trains with under
  ``feedback="metric"``, from a history table's per-epoch validation accuracies of teacher and
  student (running means, then :func:`kd.metric_guidance <kdlib.distill.feedback.metric_guidance>` of the base
  values); against an independent loop, with a teacher ahead, one behind and the clip range hit.
- ``04.4`` :func:`check_feedback_activity` -- from a per-step log, how many feedback steps there
  were, the mean size of the teacher's update per feedback step and the seconds they took;
  against a direct computation (teaching rows log an update of 0 and must not count).
- ``04.5`` :func:`check_compare_runs` -- two runs' scores tables (e.g. ``teacher_scope`` "fusion"
  and "all"): per model, the mean over folds of the paired difference of a metric and the ratio of
  the mean wall times; against a direct computation on tables whose rows are in different orders.

Every check builds its own small seeded inputs (CPU, well under a second; 04.1 and 04.2 take a few
feedback steps on a 2-D toy teacher and a linear student) and computes the expected values with
kdlib or an independent formula.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from kdlib import distill as kd
from kdlib.course import check, expect
from kdlib.train import Batch

__all__ = ["check_meta_share", "check_feedback_gradient", "check_metric_schedule", "check_feedback_activity",
           "check_compare_runs"]

_TOY = kd.DistillConfig(method="toy", alpha=1.0, beta=0.0, temperature=2.0)  # KD only, as in the notebook
_FB = kd.FeedbackConfig(lam=10.0, lookahead_lr=2.0, teacher_lr=1e-2)


class _Out(NamedTuple):
    logits: torch.Tensor  # (B, 2)
    fused: torch.Tensor | None = None


class _Toy(nn.Module):
    """A network on 2-D points in kdlib's calling convention, as notebook 04's ``Toy``."""

    modalities = ("eog",)
    adapter = None

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, eeg=None, eog=None):
        return _Out(self.net(eog))  # (B, 2) -> (B, 2)


def _toy_problem(seed: int):
    """A float64 toy teacher (2 -> 8 -> 2, eval mode), a linear student and a teaching and a quiz batch."""
    g = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    teacher = _Toy(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))).double().eval()
    student = _Toy(nn.Linear(2, 2)).double()
    torch.random.set_rng_state(torch_state)  # leave the caller's random stream as it was

    def batch(n):
        x = torch.randn(n, 2, generator=g, dtype=torch.float64)  # (n, 2)
        return Batch(None, x, (x[:, 0] + 0.3 * torch.randn(n, generator=g, dtype=torch.float64) > 0).long(),
                     torch.arange(n))
    return teacher, student, batch(16), batch(16)


def _feedback_log(seed: int, fb: kd.FeedbackConfig, n_steps: int = 6, every: int = 2) -> pd.DataFrame:
    """A per-step log like ``result.steps``: a feedback step (kd.feedback_step) every ``every`` rows."""
    teacher, student, batch, quiz = _toy_problem(seed)
    opt = torch.optim.Adam(teacher.parameters(), lr=fb.teacher_lr)
    rows = []
    for step in range(1, n_steps + 1):
        if step % every == 0:
            row = kd.feedback_step(teacher, student, None, opt, batch, quiz, _TOY, fb)
            rows.append(dict(step=step, phase="feedback", **row))
        else:
            rows.append(dict(step=step, phase="teaching", teacher_ce_grad=math.nan, feedback_grad=math.nan,
                             teacher_update=0.0))
    return pd.DataFrame(rows)


def _number(got, what: str) -> float:
    expect(isinstance(got, (int, float, np.floating, np.integer)) and not isinstance(got, bool),
           f"{what}: expected a number, got {type(got).__name__}")
    return float(got)


@check("04.1", "the meta term's share")
def check_meta_share(meta_share):
    """Check ``meta_share(steps) -> float`` on logs written by kd.feedback_step.

    Parameters
    ----------
    meta_share : callable
        The student's function: the mean over the feedback rows (``phase == "feedback"``) of
        ``feedback_grad / (teacher_ce_grad + feedback_grad)``.
    """
    for seed, lam in ((0, 0.0), (1, 1.0), (2, 10.0)):
        steps = _feedback_log(seed, replace(_FB, lam=lam))
        fb = steps[steps["phase"] == "feedback"]
        want = float((fb["feedback_grad"] / (fb["teacher_ce_grad"] + fb["feedback_grad"])).mean())
        got = _number(meta_share(steps.copy()), f"with lam = {lam:g}")
        hint = (" (hint: with lam = 0 the meta term has no weight)" if lam == 0 else
                " (hint: the share of the sum of both norms, per feedback step, then the mean over those steps)")
        expect(abs(got - want) < 1e-9, f"with lam = {lam:g}: got {got:.4f}, expected {want:.4f}{hint}")
    empty = _feedback_log(3, _FB, n_steps=1)  # one teaching row, no feedback step
    got = meta_share(empty.copy())
    expect(isinstance(got, float) and math.isnan(got),
           f"a log without feedback steps: got {got!r}, expected nan (there is no share to average)")


@check("04.2", "the teacher's feedback gradient")
def check_feedback_gradient(feedback_gradient):
    """Check ``feedback_gradient(terms, params, fb) -> list of Tensor`` against kd.feedback_step's update.

    Parameters
    ----------
    feedback_gradient : callable
        The student's function: the gradient, for every tensor of ``params``, of
        ``CE_t + lam * CE(theta')`` (``fb.teacher_ce``) or ``lam * CE(theta')`` alone.
    """
    cases = [(0, replace(_FB, lam=10.0)), (1, replace(_FB, lam=10.0, teacher_ce=False)),
             (2, replace(_FB, lam=1.0)), (3, replace(_FB, lam=0.0)), (4, replace(_FB, lam=100.0, teacher_ce=False))]
    for seed, fb in cases:
        what = f"lam = {fb.lam:g}, teacher_ce = {fb.teacher_ce}"
        teacher, student, batch, quiz = _toy_problem(seed)
        params = list(teacher.parameters())
        terms = kd.meta_objective(teacher, student, None, batch, quiz, _TOY, fb)
        got = list(feedback_gradient(terms, params, fb))
        expect(len(got) == len(params), f"{what}: got {len(got)} gradients, expected one per parameter ({len(params)})")
        before = [p.detach().clone() for p in params]
        sgd = torch.optim.SGD(params, lr=1.0)  # lr 1, no clipping: the update is minus the gradient
        kd.feedback_step(teacher, student, None, sgd, batch, quiz, _TOY, replace(fb, teacher_grad_clip=None))
        for k, (g, p, b) in enumerate(zip(got, params, before)):
            expect(torch.is_tensor(g) and g.shape == p.shape,
                   f"{what}: gradient {k} is not a tensor of shape {tuple(p.shape)}")
            want = b - p.detach()
            ok = torch.allclose(g.detach(), want, atol=1e-10, rtol=1e-8)
            expect(ok, f"{what}: gradient {k} differs from kd.feedback_step's by up to "
                       f"{float((g.detach() - want).abs().max()):.2e} (hint: lam weighs the look-ahead term; "
                       f"fb.teacher_ce says whether the teacher's own CE is in the loss)")


def _schedule(teacher_acc, student_acc, alpha: float, temperature: float, gc: kd.GuidanceConfig):
    """Reference: epoch 1 trains with the base values; after epoch e the running accuracies (EMA with
    ``gc.momentum``, started at epoch 1's) give epoch e + 1's values from the base ones."""
    alphas, temps, run_t, run_s = [alpha], [temperature], None, None
    for t, s in zip(teacher_acc[:-1], student_acc[:-1]):
        run_t = t if run_t is None else gc.momentum * run_t + (1 - gc.momentum) * t
        run_s = s if run_s is None else gc.momentum * run_s + (1 - gc.momentum) * s
        gap = run_t - run_s
        lo, hi = gc.scale_range
        alphas.append(alpha * min(max(1 + gc.alpha_gain * gap, lo), hi))
        temps.append(temperature * min(max(1 + gc.temperature_gain * gap, lo), hi))
    return np.array(alphas), np.array(temps)


@check("04.3", "alpha and T under feedback='metric'")
def check_metric_schedule(metric_schedule):
    """Check ``metric_schedule(history, alpha, temperature, gc) -> (alphas, temperatures)``.

    Parameters
    ----------
    metric_schedule : callable
        The student's function: from a history table (one row per epoch, ``teacher_val_acc`` and
        ``val_acc``), the ``alpha`` and ``T`` each epoch trains with.
    """
    rng = np.random.default_rng(4)
    ahead = (np.linspace(0.7, 0.72, 6), np.linspace(0.5, 0.65, 6))  # the teacher leads throughout
    behind = (np.full(5, 0.55), np.array([0.5, 0.6, 0.66, 0.7, 0.7]))  # the student overtakes it
    noisy = (rng.uniform(0.4, 0.9, 8), rng.uniform(0.4, 0.9, 8))
    cases = [("teacher ahead", *ahead, 1.0, 2.0, kd.GuidanceConfig()),
             ("student overtakes", *behind, 0.5, 3.0, kd.GuidanceConfig(momentum=0.0)),
             ("clipped", *noisy, 1.0, 2.0, kd.GuidanceConfig(alpha_gain=10.0, temperature_gain=1.0, momentum=0.3)),
             ("one epoch", np.array([0.8]), np.array([0.5]), 1.0, 2.0, kd.GuidanceConfig())]
    for name, t_acc, s_acc, alpha, temp, gc in cases:
        want_a, want_t = _schedule(t_acc, s_acc, alpha, temp, gc)
        history = pd.DataFrame({"epoch": np.arange(1, len(t_acc) + 1), "val_loss": rng.uniform(0.6, 0.7, len(t_acc)),
                                "val_acc": s_acc, "teacher_val_acc": t_acc})
        got = metric_schedule(history, alpha, temp, gc)
        expect(isinstance(got, tuple) and len(got) == 2, f"{name}: expected a tuple (alphas, temperatures)")
        got_a, got_t = (np.asarray(v, dtype=float) for v in got)
        expect(got_a.shape == want_a.shape and got_t.shape == want_t.shape,
               f"{name}: expected {len(want_a)} values each (one per epoch), got {got_a.shape} and {got_t.shape}")
        for label, g, w in (("alpha", got_a, want_a), ("T", got_t, want_t)):
            expect(np.allclose(g, w, atol=1e-9),
                   f"{name}: {label} per epoch {np.round(g, 3).tolist()}, expected {np.round(w, 3).tolist()} "
                   f"(hint: epoch 1 uses the base value; each later epoch rescales the *base* value from the "
                   f"running accuracies of the epochs before it)")


def _activity_log(rng: np.random.Generator, n_steps: int, every: int) -> pd.DataFrame:
    """A per-step log: teaching rows (update 0, no feedback time), a feedback row every ``every`` steps."""
    step = np.arange(1, n_steps + 1)
    is_fb = (step > 1) & ((step - 1) % every == 0)
    update = np.where(is_fb, rng.uniform(0.001, 0.05, n_steps), 0.0)
    update[np.flatnonzero(is_fb)[:1]] = 0.0  # a feedback step that did not move the teacher still counts
    return pd.DataFrame({"step": step, "phase": np.where(is_fb, "feedback", "teaching"),
                         "teacher_update": update, "feedback_s": np.where(is_fb, rng.uniform(0.01, 0.1, n_steps), 0.0),
                         "student_loss": rng.uniform(0.5, 0.7, n_steps)})


@check("04.4", "what the feedback steps did and cost")
def check_feedback_activity(feedback_activity):
    """Check ``feedback_activity(steps) -> (n_feedback, mean_update, feedback_seconds)``.

    Parameters
    ----------
    feedback_activity : callable
        The student's function on a per-step log (``phase``, ``teacher_update``, ``feedback_s``).
    """
    rng = np.random.default_rng(5)
    for n_steps, every in ((40, 8), (40, 4), (40, 16), (9, 2)):
        steps = _activity_log(rng, n_steps, every)
        fb = steps[steps["phase"] == "feedback"]
        want = (len(fb), float(fb["teacher_update"].mean()), float(fb["feedback_s"].sum()))
        got = feedback_activity(steps.copy())
        expect(isinstance(got, tuple) and len(got) == 3,
               f"every_k = {every}: expected a tuple (n_feedback, mean_update, feedback_seconds)")
        names = ("the number of feedback steps", "the mean update per feedback step", "the feedback seconds")
        for name, g, w in zip(names, got, want):
            g = _number(g, f"every_k = {every}, {name}")
            expect(abs(g - w) < 1e-9, f"every_k = {every}: {name} is {g:.4g}, expected {w:.4g} (hint: only the "
                                      f"rows with phase == 'feedback'; teaching rows log an update of 0)")


def _scores(rng: np.random.Generator, folds, seconds: float) -> pd.DataFrame:
    """A scores table as notebook 04 builds it (teacher rows without seconds), rows shuffled."""
    rows = []
    for f in folds:
        rows.append(dict(fold=f, model="teacher", accuracy=rng.uniform(0.5, 0.8), f1=rng.uniform(0.4, 0.8)))
        for m in ("v2", "v3"):
            rows.append(dict(fold=f, model=m, seconds=seconds * rng.uniform(0.8, 1.2),
                             accuracy=rng.uniform(0.5, 0.8), f1=rng.uniform(0.4, 0.8)))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=int(rng.integers(1000))).reset_index(drop=True)


def _compare(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> pd.DataFrame:
    merged = a.merge(b, on=["model", "fold"], suffixes=("_a", "_b"))
    by_model = merged.groupby("model")
    diff = (merged[f"{metric}_b"] - merged[f"{metric}_a"]).groupby(merged["model"]).mean()
    ratio = by_model["seconds_b"].mean() / by_model["seconds_a"].mean()  # NaN where no seconds (teacher)
    return pd.DataFrame({"diff": diff, "time_ratio": ratio})


@check("04.5", "two runs compared fold by fold")
def check_compare_runs(compare_runs):
    """Check ``compare_runs(scores_a, scores_b, metric) -> DataFrame`` (index model; diff, time_ratio).

    Parameters
    ----------
    compare_runs : callable
        The student's function: per model in both tables, the mean over the folds of both of
        ``metric`` in b minus in a (paired by fold), and mean ``seconds`` of b / of a over those folds.
    """
    rng = np.random.default_rng(6)
    cases = [("accuracy", range(5), range(5)), ("f1", range(5), [0, 1, 2, 4])]  # b lost fold 3
    for metric, folds_a, folds_b in cases:
        a, b = _scores(rng, folds_a, 10.0), _scores(rng, folds_b, 20.0)
        want = _compare(a, b, metric)
        got = compare_runs(a.copy(), b.copy(), metric)
        expect(isinstance(got, pd.DataFrame) and {"diff", "time_ratio"} <= set(got.columns),
               "expected a DataFrame with columns 'diff' and 'time_ratio', indexed by model")
        expect(set(got.index) == set(want.index), f"{metric}: models {sorted(got.index)}, expected {sorted(want.index)}")
        got = got.loc[want.index]
        for col, hint in (("diff", "b minus a, fold by fold (merge on model and fold), then the mean"),
                          ("time_ratio", "mean seconds of b over those of a, on the folds of both; NaN for the teacher")):
            ok = np.allclose(got[col].to_numpy(float), want[col].to_numpy(float), atol=1e-9, equal_nan=True)
            expect(ok, f"{metric}: {col} {got[col].round(4).to_dict()}, expected {want[col].round(4).to_dict()} "
                       f"(hint: {hint})")
