"""Dynamic-feedback distillation (variation 3): teaching and feedback phases.

Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

Variation 3 is one configuration of :func:`kdlib.distill.distill`: ``PRESETS["v3"]`` is
variation 2 with ``feedback="meta"``. :func:`kdlib.distill.distill` hands such configurations to
:func:`distill_feedback`, which alternates two phases::

    every training step (a batch x, y of the fold's teaching windows):
        [every k-th step] FEEDBACK PHASE -- the student is fixed, the teacher learns
            theta'   = theta - eta * grad_theta L_student(theta; teacher(x))      # look-ahead, create_graph
            L_meta   = CE(teacher(x), y) + lambda * CE(student_theta'(x_f), y_f)  # x_f: a quiz batch
                       (FeedbackConfig.teacher_ce=False drops the first term: an ablation)
            phi     <- Adam step on grad_phi L_meta (clipped)                     # reaches phi through theta'
        TEACHING PHASE -- the teacher is fixed, the student learns
            student <- AdamW step on L_student = CE + alpha * KD_T + beta * feature KD

In code this is one step function handed to :func:`kdlib.train.fit` (which owns the epochs, the
student's optimiser, validation and early stopping): ``step`` inside :func:`distill_feedback`
makes the feedback step when it is due (:func:`feedback_step`, the teacher's own Adam step),
then the teaching step (the student loss, and ``update(loss)``: fit's optimiser step).

``theta`` are the student's parameters, ``phi`` the teacher's parameters that the feedback
updates (``FeedbackConfig.teacher_scope``: by default its fusion and head, see below), ``eta``
the look-ahead learning rate (``FeedbackConfig.lookahead_lr``). The temporary student ``theta'``
is never stored: it exists as a dict of tensors evaluated with :func:`torch.func.functional_call`. The gradient of
the second term reaches the teacher only through the look-ahead step (``theta'`` depends on the
teacher's outputs, which depend on ``phi``): a meta-gradient, as in MetaDistil (Zhou, Xu &
McAuley, ACL 2022) and "learning to teach with student feedback". The teacher's own
cross-entropy keeps it accurate; the clipping of its gradient and a small learning rate keep
the meta term from dragging it into a collapse.

A second variant, ``feedback="metric"``, leaves the teacher frozen and scales its *guidance*
instead: after every epoch, ``alpha`` and ``T`` are multiplied by ``clip(1 + gain * gap)``,
``gap = running val. accuracy of the teacher - that of the student`` (:func:`metric_guidance`).
Its knobs are :class:`GuidanceConfig` (``DistillConfig.guidance_config``); those of ``"meta"`` are
:class:`FeedbackConfig` (``DistillConfig.feedback_config``): each mode reads only its own.

Decisions (documented here, tested in ``tests/test_feedback.py``)
-----------------------------------------------------------------
* **The caller's teacher is never modified.** :func:`distill_feedback` trains a deep copy,
  returned as ``DistillResult.teacher`` (its final state: early stopping selects the *student*).
* **Teacher in eval mode throughout.** Its batch-norm layers use their running statistics
  (not updated) and dropout is off, in the teaching phase (outputs without gradient) and in
  the feedback phase (outputs with gradient): the teacher is a deterministic function of its
  parameters, so the meta-gradient is exact and a finite difference can check it.
* **Temporary student in the student's own mode** (train mode under :func:`kdlib.train.fit`:
  batch statistics, as in the real teaching step), evaluated on *clones* of its buffers so the
  real student's running statistics are untouched by the look-ahead.
* **Only the student's parameters take the look-ahead step**, not the adapter's: the adapter
  is not on the path from the EOG input to the logits, so its step cannot change the
  temporary student's cross-entropy (the feature term's gradient still flows through it).
* **Feedback batches come from the quiz** (``quiz``: :attr:`kdlib.data.splits.Fold.quiz`,
  trials of the training side that no model is taught on and that early stopping never sees),
  drawn by their own seeded generator. The meta-objective then rewards the teacher for the
  temporary student's accuracy on *unseen trials*, i.e. its generalisation, which is what the
  feedback is for; drawn from the teaching windows (kdlib < 0.2), it rewarded the teacher for
  speeding up the student's in-sample fit. The cost: ``ProtocolConfig.quiz_size`` (15 %) of each
  fold's training trials are held out from *every* method (so that all of them train on the same
  teaching windows and V3 - V2 measures the feedback, not a change of data): at 40 DEAP trials
  and 5 folds, 21 teaching trials instead of 26.
* **Randomness of its own.** Everything only variation 3 does draws from its own streams: the
  feedback batches from a generator seeded with ``seed + 1``, and the look-ahead (a student
  forward pass in train mode, so dropout) runs inside :func:`torch.random.fork_rng`, seeded with
  ``seed + 2 + step``, so that the student's own random stream (dropout masks, batch order) is
  the one variation 2 sees. With the feedback made inert (``lam=0``, ``teacher_lr=0``) variation 3
  gives a student bit-identical to variation 2's (tested).
* **The feedback adjusts the teacher's fusion and head; its two branches stay frozen**
  (``teacher_scope="fusion"``, the default). The paper says the feedback phase "adjusts the
  teacher according to the student's performance" without saying which parts; adjusting how
  the teacher combines the EEG and EOG features and maps them to its targets is a legitimate
  reading, and the part of the teacher closest to the targets the student is taught from. It
  is also what keeps variation 3's cost close to variation 2's (measured in
  ``benchmarks/results/bench_feedback.md``): the branches (the EEG branch is most of the
  teacher's compute) run once per fold over the training and validation
  windows, their outputs (:class:`~kdlib.models.BranchOutputs`, every depth the fusion reads)
  are cached, and each batch runs only the fusion and the head on them. ``"all"`` updates the
  whole teacher and runs it in full on every batch (several times variation 2's cost per fold).
* **Teacher outputs**: computed once per fold, as for variation 2 (the same function), and used
  while the teacher has not changed; after its first update they are recomputed on every batch
  (``"meta"``): from the cached branch outputs (``"fusion"``) or from the raw windows
  (``"all"``). ``"metric"`` keeps the teacher frozen and its targets cached.
* **How far the teacher moved** is logged per fold (``DistillResult.feedback``): the number of
  feedback steps, the mean change of its high-class probability on the teaching windows and the
  share of those windows whose prediction flipped.
* **Early stopping** selects the student's epoch by its validation loss, as in variation 2.
* **Teacher optimiser**: Adam (no weight decay), ``FeedbackConfig.teacher_lr``, constant rate,
  global gradient norm clipped to ``teacher_grad_clip``.
* **The default schedule** (``every_k=8``, ``teacher_lr=1e-4``, ``lam=1``, ``lookahead_lr=0.1``) was
  chosen by a sweep scored on validation trials only (``benchmarks/sweep_defaults.py --stage
  feedback``: kit-size models, 4 synthetic subjects x 2 tasks, fold 0; six schedules with ``every_k``
  in {4, 8} (``every_k = 2`` costs far more per fold), ``teacher_lr`` in {1e-4, 1e-3}, ``lam`` in
  {1, 10}, ``lookahead_lr`` in {0.1, 1}; the numbers are in ``benchmarks/results/sweep_feedback.md``).
  With the quiz as feedback data the feedback is measurable at these defaults (the teacher's
  predictions on the teaching windows move and some flip); the stronger schedules moved it more and
  scored lower on validation, and none of them beat variation 2 on validation: on the kit's
  synthetic data the feedback has not been shown to help, and the notebooks say so.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.func import functional_call

from kdlib.data.windows import WindowSet
from kdlib.models import BranchOutputs
from kdlib.repro import choose_device, dataloader_generator, seed_everything
from kdlib.train import Batch, TrainConfig, fit, infer, to_tensors

from .cka import linear_cka
from .config import FEEDBACK_MODES, TEACHER_SCOPES, DistillConfig, FeedbackConfig, GuidanceConfig  # noqa: F401  (re-exported)
from .distill import DistillResult, build_student, ce_weight
from .losses import cross_entropy, loss_shares, student_loss
from .targets import branch_outputs, teacher_forward, teacher_outputs, teacher_targets

__all__ = ["FeedbackConfig", "GuidanceConfig", "FEEDBACK_MODES", "TEACHER_SCOPES", "FeedbackTerms", "teacher_outputs",
           "branch_outputs", "feedback_parameters", "lookahead_params", "meta_objective", "feedback_step",
           "feedback_batch", "metric_guidance", "distill_feedback"]


class FeedbackTerms(NamedTuple):
    """The two parts of the teacher's feedback-phase loss (tensors with gradient).

    Attributes
    ----------
    teacher_ce : Tensor ()
        The teacher's cross-entropy on the teaching batch.
    lookahead_ce : Tensor ()
        The temporary student's cross-entropy on the feedback batch.
    teacher_logits : Tensor (B, C)
    """

    teacher_ce: torch.Tensor
    lookahead_ce: torch.Tensor
    teacher_logits: torch.Tensor



# --- the two phases, one step each -----------------------------------------------------------------

def feedback_parameters(teacher: nn.Module, scope: str) -> list[nn.Parameter]:
    """The teacher's trainable parameters that the feedback phase updates.

    Parameters
    ----------
    teacher : nn.Module
        For ``"fusion"``: with ``.eeg`` and ``.eog`` branch modules (FusionTeacher, LateFusionTeacher).
    scope : {'fusion', 'all'}
        ``FeedbackConfig.teacher_scope``: all but the two branches' parameters, or all.

    Returns
    -------
    list of nn.Parameter
    """
    if scope not in TEACHER_SCOPES:
        raise ValueError(f"scope must be one of {TEACHER_SCOPES}, got {scope!r}")
    params = [p for p in teacher.parameters() if p.requires_grad]
    if scope == "all":
        return params
    frozen_ids = {id(p) for branch in (teacher.eeg, teacher.eog) for p in branch.parameters()}
    return [p for p in params if id(p) not in frozen_ids]


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Clones of the buffers: batch norm in train mode updates these, not the model's."""
    return {n: b.clone() for n, b in model.named_buffers()}


def lookahead_params(student: nn.Module, adapter: nn.Module | None, teacher_out, eog: torch.Tensor,
                     y: torch.Tensor, config: DistillConfig, lr: float,
                     weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The temporary student: one SGD step of the student's distillation loss, kept differentiable.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    student : nn.Module
        Called as ``student(eeg=None, eog=eog)``; returns ``.logits (B, C)`` (and ``.fused``).
    adapter : FeatureAdapter or None
        The student's adapter (``beta > 0``); held at its current value.
    teacher_out : TeacherOutput
        *With* gradient to the teacher's parameters: that is the path of the meta-gradient.
    eog : Tensor (B, n_eog, T)
    y : Tensor (B,)
    config : DistillConfig
        ``alpha``, ``beta``, ``temperature`` of the student's loss.
    lr : float
        Look-ahead learning rate ``eta``.
    weight : Tensor (C,), optional

    Returns
    -------
    dict of str -> Tensor
        ``theta' = theta - eta * grad L_student`` for every trainable parameter of ``student``,
        a function of the teacher's parameters (``create_graph=True``).
    """
    params = {n: p for n, p in student.named_parameters() if p.requires_grad}
    out = functional_call(student, {**params, **_buffers(student)}, (), {"eeg": None, "eog": eog})
    loss, _ = student_loss(out, teacher_out, y, adapter, config, weight)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
    return {n: p if g is None else p - lr * g for (n, p), g in zip(params.items(), grads)}


def meta_objective(teacher: nn.Module, student: nn.Module, adapter: nn.Module | None, batch: Batch,
                   fb_batch: Batch, config: DistillConfig, fb: FeedbackConfig,
                   weight: torch.Tensor | None = None, branches: BranchOutputs | None = None) -> FeedbackTerms:
    """The two terms of the teacher's feedback loss, ``CE_t + lambda * CE(student_theta')``.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    teacher : nn.Module
        Its mode is left as it is (kdlib calls this in eval mode).
    student, adapter : nn.Module
        See :func:`lookahead_params`.
    batch : Batch
        The teaching batch: the look-ahead distils on it, the teacher's own CE is scored on it.
    fb_batch : Batch
        The feedback batch: quiz windows (held-out training trials), where the temporary
        student is scored.
    config : DistillConfig
    fb : FeedbackConfig
    weight : Tensor (C,), optional
    branches : BranchOutputs, optional
        The teacher's branch outputs for ``batch`` (constants): then only ``teacher.fuse`` runs,
        and only the fusion and head are on the gradient's path.

    Returns
    -------
    FeedbackTerms
        Differentiable with respect to the teacher's parameters.
    """
    t_out = teacher_forward(teacher, batch.eeg, batch.eog, branches)  # logits (B, C), fused (B, L, 2d), with gradient
    teacher_ce = cross_entropy(t_out.logits, batch.y, weight)
    params = lookahead_params(student, adapter, t_out, batch.eog, batch.y, config, fb.lookahead_lr, weight)
    s_out = functional_call(student, {**params, **_buffers(student)}, (), {"eeg": None, "eog": fb_batch.eog})
    return FeedbackTerms(teacher_ce, cross_entropy(s_out.logits, fb_batch.y, weight), t_out.logits)


def _norm(tensors) -> float:
    return math.sqrt(sum(float(t.pow(2).sum()) for t in tensors if t is not None))


def feedback_step(teacher: nn.Module, student: nn.Module, adapter: nn.Module | None,
                  optimizer: torch.optim.Optimizer, batch: Batch, fb_batch: Batch, config: DistillConfig,
                  fb: FeedbackConfig, weight: torch.Tensor | None = None,
                  branches: BranchOutputs | None = None) -> dict:
    """One feedback phase step: update the teacher from the temporary student's cross-entropy.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    teacher : nn.Module
        Put in eval mode; the only module whose parameters change.
    student, adapter : nn.Module
        Read, never changed (parameters, buffers and ``.grad`` untouched).
    optimizer : torch.optim.Optimizer
        Over the teacher's parameters that learn (:func:`feedback_parameters`): the gradient is
        taken, clipped and applied for these only.
    batch, fb_batch : Batch
        Teaching batch (teaching windows) and feedback batch (quiz windows).
    config : DistillConfig
    fb : FeedbackConfig
    weight : Tensor (C,), optional
    branches : BranchOutputs, optional
        The teacher's branch outputs for ``batch`` (``teacher_scope="fusion"``): the branches
        are then constants, get no gradient and do not change; only the fusion and head do.

    Returns
    -------
    dict
        ``meta_loss`` (the loss the teacher steps on), ``teacher_ce``, ``lookahead_ce``,
        ``teacher_ce_grad`` and ``feedback_grad`` (gradient norms of the two terms, ``lambda``
        included, before clipping; ``teacher_ce_grad`` is 0 when ``fb.teacher_ce`` is False and
        the term is left out) and ``teacher_update`` (L2 norm of the change of the teacher's
        parameters).

    Notes
    -----
    ``fb.teacher_ce=False`` drops the teacher's own cross-entropy: the update then follows the
    meta-gradient ``lambda * grad_phi CE(student_theta')`` alone (``teacher_ce`` is still logged).
    """
    teacher.eval()
    tparams = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    terms = meta_objective(teacher, student, adapter, batch, fb_batch, config, fb, weight, branches)
    if fb.teacher_ce:  # the default: CE_t + lambda * CE(theta'); else the meta term alone
        g_ce = torch.autograd.grad(terms.teacher_ce, tparams, retain_graph=True, allow_unused=True)
    else:
        g_ce = [None] * len(tparams)
    g_fb = torch.autograd.grad(fb.lam * terms.lookahead_ce, tparams, allow_unused=True)
    for p, a, b in zip(tparams, g_ce, g_fb):
        p.grad = sum(g for g in (a, b) if g is not None) if (a is not None or b is not None) else None
    if fb.teacher_grad_clip is not None:
        nn.utils.clip_grad_norm_(tparams, fb.teacher_grad_clip)
    before = [p.detach().clone() for p in tparams]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    meta = fb.lam * terms.lookahead_ce.detach()  # the loss the teacher stepped on (with or without its CE)
    meta = float(terms.teacher_ce.detach() + meta) if fb.teacher_ce else float(meta)
    return dict(meta_loss=meta, teacher_ce=float(terms.teacher_ce.detach()),
                lookahead_ce=float(terms.lookahead_ce.detach()), teacher_ce_grad=_norm(g_ce),
                feedback_grad=_norm(g_fb), teacher_update=_norm([p.detach() - b for p, b in zip(tparams, before)]))


def feedback_batch(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of a feedback batch: ``batch_size`` of the ``n`` quiz windows, drawn at random.

    Parameters
    ----------
    n : int
        Number of quiz windows (indices ``0 .. n-1`` of the ``quiz`` WindowSet).
    batch_size : int
    generator : torch.Generator
        Seeded: the same seed draws the same feedback batches.

    Returns
    -------
    Tensor (min(batch_size, n),) int64
    """
    if n < 1:
        raise ValueError("feedback_batch: no quiz windows to draw from")
    return torch.randperm(n, generator=generator)[:batch_size]  # (b,)


def metric_guidance(alpha: float, temperature: float, teacher_acc: float, student_acc: float,
                    fb: GuidanceConfig) -> tuple[float, float]:
    """The metric-driven variant: scale the teacher's guidance from the accuracy gap.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    alpha, temperature : float
        The configured (base) KD weight and temperature.
    teacher_acc, student_acc : float
        Running validation accuracies.
    fb : GuidanceConfig
        ``alpha_gain``, ``temperature_gain``, ``scale_range``.

    Returns
    -------
    (alpha, temperature) : tuple of float

    Notes
    -----
    ``gap = teacher_acc - student_acc``. While the teacher is ahead (``gap > 0``) both grow: the
    student is pulled harder (larger ``alpha``) towards softer targets (larger ``T``, more of the
    teacher's "dark knowledge", easier to follow). When the student has caught up or overtaken
    it (``gap <= 0``) both shrink: less weight on a teacher that has nothing more to give, and
    sharper targets. Each factor ``1 + gain * gap`` is clipped to ``scale_range``.
    """
    gap = teacher_acc - student_acc
    lo, hi = fb.scale_range
    a = alpha * float(np.clip(1.0 + fb.alpha_gain * gap, lo, hi))
    t = temperature * float(np.clip(1.0 + fb.temperature_gain * gap, lo, hi))
    return a, t


# --- one fold ------------------------------------------------------------------------------------

def _logits_and_fused(out) -> tuple[torch.Tensor, torch.Tensor]:
    return out.logits.float(), out.fused.float()  # (b, C), (b, L, F)


def _scores(model: nn.Module, data: dict, batch_size: int,
            branches: BranchOutputs | None = None) -> tuple[float, torch.Tensor]:
    """Eval-mode accuracy and fused tokens ``(N, L, F)`` of a model on tensors from to_tensors
    (of a teacher from its cached ``branches`` for the same windows, when given)."""
    if branches is None:
        logits, fused = infer(model, {"eeg": data["eeg"], "eog": data["eog"]}, batch_size, keep=_logits_and_fused)
    else:
        logits, fused = infer(model, branches, batch_size, call=lambda t, b: t.fuse(b), keep=_logits_and_fused)
    return float((logits.argmax(-1) == data["y"]).float().mean()), fused  # (N, L, F)


class _FedTeacher:
    """The teacher of one fold as variation 3 sees it: the copy that learns, its optimiser, its
    cached targets and branch outputs, the fold's windows it reads, its feedback batches."""

    def __init__(self, teacher, train, val, quiz, task, config: DistillConfig, train_config: TrainConfig,
                 weight, device):
        self.model, self.config, self.fb = teacher, config, config.feedback_config
        self.weight, self.device, self.seed = weight, device, train_config.seed
        self.batch_size, self.eval_bs = train_config.batch_size, train_config.eval_batch_size
        self.tr = to_tensors(train, task, ("eeg", "eog"), device)
        self.va = to_tensors(val if val is not None and len(val) else train, task, ("eeg", "eog"), device)
        self.gen = dataloader_generator(train_config.seed + 1)  # feedback batches: their own stream
        self.targets = teacher_targets(teacher, train, self.eval_bs, device)  # as variation 2's, while unchanged
        self.tr_branches = self.va_branches = None
        self.changed, self.n_feedback = False, 0
        if config.feedback == "meta":
            self.qz = to_tensors(quiz, task, ("eeg", "eog"), device)
            if self.fb.teacher_scope == "fusion":  # the branches stay frozen: run them once
                self.tr_branches = branch_outputs(teacher, self.tr["eeg"], self.tr["eog"], self.eval_bs)
                self.va_branches = branch_outputs(teacher, self.va["eeg"], self.va["eog"], self.eval_bs)
            self.opt = torch.optim.Adam(feedback_parameters(teacher, self.fb.teacher_scope), lr=self.fb.teacher_lr)
        self.val_acc, self.val_fused = self.on_val()

    def batch_of(self, data: dict, index: torch.Tensor) -> Batch:
        i = index.to(data["y"].device)
        return Batch(data["eeg"][i], data["eog"][i], data["y"][i], index)  # (B, ...) each

    def branches_of(self, index: torch.Tensor) -> BranchOutputs | None:
        """The cached branch outputs of training windows ``index`` (None: scope "all")."""
        return None if self.tr_branches is None else self.tr_branches.take(index)

    def on_val(self) -> tuple[float, torch.Tensor]:
        """The teacher's validation accuracy and fused tokens (from the cached branches under "fusion")."""
        return _scores(self.model, self.va, self.eval_bs, self.va_branches)

    def feedback(self, student, index: torch.Tensor, step: int) -> dict:
        """One feedback step on teaching windows ``index``, on its own random streams (quiz batch,
        look-ahead dropout): the student is read, the teacher's optimiser steps."""
        batch = self.batch_of(self.tr, index)  # the teaching batch with its EEG: the teacher reads both
        fb_batch = self.batch_of(self.qz, feedback_batch(len(self.qz["y"]), self.batch_size, self.gen))
        devices = [self.device] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the student's stream is left as it was
            torch.manual_seed(self.seed + 2 + step)
            row = feedback_step(self.model, student.student, student.adapter, self.opt, batch, fb_batch,
                                self.config, self.fb, self.weight, branches=self.branches_of(index))
        self.n_feedback += 1
        self.changed = self.changed or row["teacher_update"] > 0
        return row

    def outputs(self, batch: Batch):
        """The teacher's outputs for a teaching batch: cached while it has not changed, else recomputed
        (from the cached branches under "fusion", from the windows under "all")."""
        if not self.changed:
            return self.targets.take(batch.index)
        branches = self.branches_of(batch.index)
        eeg = None if branches is not None else self.tr["eeg"][batch.index.to(self.tr["y"].device)]
        return teacher_outputs(self.model, eeg, batch.eog, branches)

    def movement(self) -> dict:
        """How far the feedback moved the teacher on the teaching windows (per fold)."""
        if self.config.feedback != "meta":
            return {}
        start = self.targets.logits  # (N, C) the teacher as it came
        end = start
        if self.changed:
            inputs, call = ((self.tr_branches, lambda t, b: t.fuse(b)) if self.tr_branches is not None
                            else ({"eeg": self.tr["eeg"], "eog": self.tr["eog"]}, None))
            end = infer(self.model, inputs, self.eval_bs, call=call)  # (N, C)
        p0, p1 = start.softmax(-1)[:, -1], end.softmax(-1)[:, -1]  # (N,) high-class probability
        flips = (start.argmax(-1) != end.argmax(-1)).float().mean()
        return dict(feedback_steps=self.n_feedback, teacher_dp=float((p1 - p0).abs().mean()),
                    teacher_flips=float(flips))


class _Guidance:
    """The student loss's ``alpha`` and ``T``: fixed ("meta"), or rescaled after every epoch from
    the running validation accuracies ("metric", :func:`metric_guidance`)."""

    def __init__(self, config: DistillConfig):
        self.base, self.loss_config = config, config
        self.alpha, self.temperature = config.alpha, config.temperature
        self.run_t = self.run_s = None

    def end_epoch(self, teacher_acc: float, student_acc: float) -> None:
        """Update the running accuracies; under "metric", the guidance of the next epoch."""
        fb = self.base.guidance_config
        ema = lambda run, x: x if run is None else fb.momentum * run + (1 - fb.momentum) * x  # noqa: E731
        self.run_t, self.run_s = ema(self.run_t, teacher_acc), ema(self.run_s, student_acc)

    def next_epoch(self) -> None:
        if self.base.feedback == "metric":
            self.alpha, self.temperature = metric_guidance(self.base.alpha, self.base.temperature,
                                                           self.run_t, self.run_s, self.base.guidance_config)
            self.loss_config = replace(self.base, alpha=self.alpha, temperature=self.temperature)


def _step_row(step, epoch, is_fb, fb_row, t_fb, loss, parts, s_logits, t_logits, y, weight, guide) -> dict:
    """One row of the per-step log (``DistillResult.steps``)."""
    acc = lambda z: float((z.detach().argmax(-1) == y).float().mean())  # noqa: E731
    return dict(step=step, epoch=epoch, phase="feedback" if is_fb else "teaching",
                student_loss=float(loss.detach()), **parts, student_acc=acc(s_logits),
                teacher_ce_batch=float(cross_entropy(t_logits.detach(), y, weight)), teacher_acc=acc(t_logits),
                alpha=guide.alpha, temperature=guide.temperature,
                meta_loss=fb_row.get("meta_loss", math.nan), lookahead_ce=fb_row.get("lookahead_ce", math.nan),
                teacher_ce_grad=fb_row.get("teacher_ce_grad", math.nan),
                feedback_grad=fb_row.get("feedback_grad", math.nan),
                teacher_update=fb_row.get("teacher_update", 0.0), feedback_s=t_fb if is_fb else 0.0)


def _check(teacher, config: DistillConfig, quiz) -> None:
    """Fail early, with one line, on what variation 3 cannot run with."""
    if config.feedback not in ("meta", "metric"):
        raise ValueError(f"distill_feedback needs feedback 'meta' or 'metric', got {config.feedback!r}")
    if teacher is None:
        raise ValueError(f"{config.method}: feedback needs the teacher")
    if config.feedback == "meta" and (quiz is None or len(quiz) == 0):
        raise ValueError(f"{config.method}: feedback='meta' needs quiz windows (held-out training trials, "
                         f"Fold.quiz; make folds with quiz_size > 0) for its feedback batches")
    if (config.feedback == "meta" and config.feedback_config.teacher_scope == "fusion"
            and not all(hasattr(teacher, a) for a in ("eeg", "eog", "branches", "fuse"))):
        raise ValueError(f"teacher_scope='fusion' needs a teacher with .eeg/.eog branches and .branches/.fuse "
                         f"(FusionTeacher, LateFusionTeacher), not {type(teacher).__name__}; "
                         f"use FeedbackConfig(teacher_scope='all')")


def distill_feedback(teacher: nn.Module, train: WindowSet, val: WindowSet | None, task: str,
                     config: DistillConfig, train_config: TrainConfig, *, model_config=None,
                     desc: str | None = None, quiz: WindowSet | None = None) -> DistillResult:
    """Train one fold's student with dynamic feedback (``config.feedback`` = "meta" or "metric").

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``. Called by
    :func:`kdlib.distill.distill` (same signature); see the module docstring for the phases.

    Parameters
    ----------
    teacher : FusionTeacher
        This fold's trained teacher. Not modified: a deep copy is trained ("meta"), its fusion
        and head only or all of it (``config.feedback_config.teacher_scope``).
    train, val : WindowSet
        The fold's teaching windows (teaching batches) and validation windows (early stopping,
        the "metric" variant's accuracies, CKA).
    task : {'valence', 'arousal'}
    config : DistillConfig
        ``feedback`` in {"meta", "metric"}; knobs in ``config.feedback_config``.
    train_config : TrainConfig
        The student's training (as in variation 2).
    model_config : ModelConfig, optional
        Default ``teacher.config``.
    desc : str, optional
    quiz : WindowSet
        Held-out training trials, normalised like ``train`` (:attr:`kdlib.data.splits.Fold.quiz`):
        the feedback batches of ``"meta"`` (required there; not read by ``"metric"``). No other
        data enters.

    Returns
    -------
    DistillResult
        As for variation 2, plus ``steps`` (one row per training step: phase, both losses,
        both batch accuracies, ``alpha``, ``temperature``, the feedback terms, gradient norms and
        the size of the teacher's update), ``teacher`` (the fed-back copy, final state) and
        ``feedback`` (steps, the teacher's movement; ``"meta"`` only).
    """
    t0 = time.perf_counter()
    _check(teacher, config, quiz)
    device = choose_device(train_config.device)
    model_config = model_config or teacher.config
    teacher = copy.deepcopy(teacher).to(device).eval()  # the caller's teacher stays as it is
    seed_everything(train_config.seed)
    model = build_student(model_config, config, teacher).to(device)
    weight = ce_weight(train_config, train.labels(task), model_config.n_classes, device)
    fed = _FedTeacher(teacher, train, val, quiz, task, config, train_config, weight, device)
    guide, log = _Guidance(config), []  # the student loss's alpha and T; the per-step log
    cka_init = linear_cka(_scores(model, fed.va, fed.eval_bs)[1], fed.val_fused)
    every_k, n, epoch_no = config.feedback_config.every_k, 0, 1

    def step(student, batch: Batch, update):  # one training step of variation 3 (fit runs the epochs)
        nonlocal n
        n += 1
        t_fb = time.perf_counter()
        is_fb = config.feedback == "meta" and n > 1 and (n - 1) % every_k == 0
        fb_row = fed.feedback(student, batch.index, n) if is_fb else {}  # FEEDBACK: the teacher learns
        t_fb = time.perf_counter() - t_fb
        t_out = fed.outputs(batch)  # TEACHING: the teacher is fixed, the student learns
        out = student(eog=batch.eog)
        loss, parts = student_loss(out, t_out, batch.y, student.adapter, guide.loss_config, weight)
        log.append(_step_row(n, epoch_no, is_fb, fb_row, t_fb, loss, parts, out.logits, t_out.logits, batch.y,
                             weight, guide))
        update(loss)  # the student's optimiser step (fit's AdamW, clipped, scheduled)
        return loss, out.logits, parts

    def on_epoch_end(epoch: int, student, row: dict) -> dict:
        """Loss shares, CKA with the *current* teacher, accuracies, guidance (history columns)."""
        nonlocal epoch_no
        if fed.changed:
            fed.val_acc, fed.val_fused = fed.on_val()
        s_acc, s_fused = _scores(student, fed.va, fed.eval_bs)
        guide.end_epoch(fed.val_acc, s_acc)
        extra = dict(loss_shares(row, guide.alpha, config.beta), cka=linear_cka(s_fused, fed.val_fused),
                     teacher_val_acc=fed.val_acc, alpha=guide.alpha, temperature=guide.temperature,
                     feedback_steps=fed.n_feedback)
        guide.next_epoch()
        epoch_no += 1
        return extra

    result = fit(model, train, val, task, train_config, step=step, desc=desc or f"{config.method} {task}",
                 on_epoch_end=on_epoch_end)
    teacher.eval()
    return DistillResult(student=model.student, adapter=model.adapter, history=result.history,
                         best_epoch=result.best_epoch, cka_init=cka_init, config=config,
                         train_config=train_config, fit=result, seconds=time.perf_counter() - t0,
                         steps=pd.DataFrame(log), teacher=teacher, feedback=fed.movement())
