"""Dynamic-feedback distillation (variation 3): teaching and feedback phases.

Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

Variation 3 is one configuration of :func:`kdlib.distill.distill`: ``PRESETS["v3"]`` is
variation 2 with ``feedback="meta"``. :func:`distill` hands such configurations to
:func:`distill_feedback`, which alternates two phases::

    every training step (a batch x, y of the fold's teaching windows):
        [every k-th step] FEEDBACK PHASE -- the student is fixed, the teacher learns
            theta'   = theta - eta * grad_theta L_student(theta; teacher(x))      # look-ahead, create_graph
            L_meta   = CE(teacher(x), y) + lambda * CE(student_theta'(x_f), y_f)  # x_f: a quiz batch
            phi     <- Adam step on grad_phi L_meta (clipped)                     # reaches phi through theta'
        TEACHING PHASE -- the teacher is fixed, the student learns
            student <- AdamW step on L_student = CE + alpha * KD_T + beta * feature KD

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
  is also what keeps variation 3 within 2x the cost of variation 2: the branches (the EEG
  branch is most of the teacher's compute) run once per fold over the training and validation
  windows, their outputs (:class:`~kdlib.models.BranchOutputs`, every depth the fusion reads)
  are cached, and each batch runs only the fusion and the head on them. ``"all"`` updates the
  whole teacher and runs it in full on every batch (about 2.4-2.9x variation 2 per fold).
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
  feedback``, ``benchmarks/results/sweep_feedback.md``: kit-size models, 4 synthetic subjects x 2
  tasks, fold 0; six schedules with ``every_k`` in {4, 8} (``every_k = 2`` would cost 2.9x
  variation 2 per fold), ``teacher_lr`` in {1e-4, 1e-3}, ``lam`` in {1, 10}, ``lookahead_lr`` in
  {0.1, 1}). With the quiz as feedback data the feedback is measurable at these defaults: about 9
  feedback steps per fold moved the teacher's high-class probability on the teaching windows by
  0.076 on average and flipped 23 % of its predictions there. The stronger schedules moved it more
  (up to 0.34 and 58 %) and scored lower on validation. None of them beat variation 2 on validation
  (the best, these defaults: -0.004 ± 0.010 SE over units; the others -0.011 to -0.031): on the kit's
  synthetic data the feedback has not been shown to help, and the notebooks say so.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.func import functional_call

from kdlib.data.windows import WindowSet
from kdlib.models import BranchOutputs
from kdlib.repro import choose_device, dataloader_generator, seed_everything
from kdlib.train import Batch, TrainConfig, call_model, fit, iterate_batches, to_tensors

from .cka import linear_cka
from .losses import cross_entropy, loss_shares, student_loss

if TYPE_CHECKING:  # pragma: no cover
    from .distill import DistillConfig, DistillResult

__all__ = ["FeedbackConfig", "FEEDBACK_MODES", "TEACHER_SCOPES", "FeedbackTerms", "teacher_outputs",
           "branch_outputs", "feedback_parameters", "lookahead_params", "meta_objective", "feedback_step",
           "feedback_batch", "metric_guidance", "distill_feedback"]

FEEDBACK_MODES = ("none", "meta", "metric")
TEACHER_SCOPES = ("fusion", "all")


@dataclass(frozen=True)
class FeedbackConfig:
    """The knobs of the feedback phase (``DistillConfig.feedback_config``).

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Notes
    -----
    ``teacher_scope`` says which of the teacher's parameters the feedback phase (``"meta"``)
    updates. ``"fusion"`` (default): the fusion module and the classification head, i.e. what
    comes after the two modality branches; the EEG and EOG branches stay frozen, so
    :func:`distill_feedback` runs them once per fold and caches their outputs (every depth,
    ``2 * n_layers`` tensors ``(N, L, d)``: about 94 kB per window at the DEFAULT sizes, 45 MB
    for 480 windows). The paper's feedback phase "adjusts the teacher according to the
    student's performance"; adjusting how it fuses the modalities and maps them to targets is a
    legitimate reading, and it keeps variation 3 within 2x variation 2 per fold. ``"all"``: the
    whole teacher learns and runs in full on every batch (2.4-2.9x variation 2 per fold, see
    ``benchmarks/results/bench_feedback.md``). ``"fusion"`` needs a teacher with ``.eeg`` and
    ``.eog`` branches and ``.branches``/``.fuse`` methods (:class:`~kdlib.models.FusionTeacher`,
    :class:`~kdlib.models.LateFusionTeacher`, whose "fusion" is its head only).
    """

    every_k: int = 8  # a feedback step after every k teaching steps ("meta"; ~every 1.6 epochs of a DEAP subject)
    lam: float = 1.0  # lambda: weight of the temporary student's CE (on quiz windows) in the teacher's loss
    lookahead_lr: float = 0.1  # eta: SGD step of the temporary student (look-ahead)
    teacher_lr: float = 1e-4  # Adam learning rate of the teacher (10x below the student's; 0: frozen)
    teacher_grad_clip: float | None = 1.0  # clip the teacher's gradient norm (None: no clipping)
    teacher_scope: Literal["fusion", "all"] = "fusion"  # what the feedback updates: fusion + head, or all
    alpha_gain: float = 2.0  # "metric": alpha *= clip(1 + alpha_gain * gap)
    temperature_gain: float = 2.0  # "metric": T *= clip(1 + temperature_gain * gap)
    scale_range: tuple[float, float] = (0.25, 2.0)  # "metric": clip range of both factors
    momentum: float = 0.5  # "metric": running accuracy = m * running + (1 - m) * this epoch's

    def __post_init__(self):
        if self.every_k < 1:
            raise ValueError(f"every_k must be >= 1, got {self.every_k}")
        if self.teacher_scope not in TEACHER_SCOPES:
            raise ValueError(f"teacher_scope must be one of {TEACHER_SCOPES}, got {self.teacher_scope!r}")
        if not (self.lam >= 0 and self.lookahead_lr > 0 and self.teacher_lr >= 0):
            raise ValueError(f"lam must be >= 0, lookahead_lr > 0 and teacher_lr >= 0 (0: a teacher that cannot "
                             f"change), got {self.lam}, {self.lookahead_lr}, {self.teacher_lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        lo, hi = self.scale_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= 1 <= high, got {self.scale_range}")


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

def _forward(teacher: nn.Module, eeg: torch.Tensor | None, eog: torch.Tensor | None,
             branches: BranchOutputs | None):
    """The teacher on a batch: in full, or only after its branches when their outputs are given."""
    return call_model(teacher, eeg, eog) if branches is None else teacher.fuse(branches)


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, eeg: torch.Tensor | None, eog: torch.Tensor | None,
                    branches: BranchOutputs | None = None):
    """The teacher's outputs for one batch in eval mode, without gradient (teaching phase).

    Parameters
    ----------
    teacher : nn.Module
    eeg : Tensor (B, n_eeg, T) or None
    eog : Tensor (B, n_eog, T) or None
    branches : BranchOutputs, optional
        The teacher's branch outputs for this batch (``teacher_scope="fusion"``): then only
        ``teacher.fuse`` runs and ``eeg``, ``eog`` are not read.

    Returns
    -------
    TeacherOutput
        ``.logits (B, C)``, ``.fused (B, L, 2d)``, detached.
    """
    teacher.eval()
    return _forward(teacher, eeg, eog, branches)


@torch.no_grad()
def branch_outputs(teacher: nn.Module, eeg: torch.Tensor, eog: torch.Tensor, batch_size: int = 256) -> BranchOutputs:
    """The teacher's branch outputs for every window, once (eval mode, no gradient).

    Parameters
    ----------
    teacher : FusionTeacher or LateFusionTeacher
        Anything with ``.branches(eeg, eog) -> BranchOutputs``.
    eeg : Tensor (N, n_eeg, T)
    eog : Tensor (N, n_eog, T)
    batch_size : int

    Returns
    -------
    BranchOutputs
        Every depth ``(N, L, d)`` of both branches, on the device of ``eeg``; look up a batch
        with ``.take(index)``.
    """
    teacher.eval()
    parts = [teacher.branches(eeg[idx], eog[idx]) for idx in iterate_batches(len(eeg), batch_size)]

    def cat(per_batch):  # batches x n_layers x (b, L, d) -> n_layers x (N, L, d)
        return tuple(torch.cat(depth) for depth in zip(*per_batch))
    return BranchOutputs(cat([b.eeg_depths for b in parts]), cat([b.eog_depths for b in parts]))


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
    t_out = _forward(teacher, batch.eeg, batch.eog, branches)  # logits (B, C), fused (B, L, 2d), with gradient
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
        ``meta_loss``, ``teacher_ce``, ``lookahead_ce``, ``teacher_ce_grad`` and ``feedback_grad``
        (gradient norms of the two terms, ``lambda`` included, before clipping) and
        ``teacher_update`` (L2 norm of the change of the teacher's parameters).
    """
    teacher.eval()
    tparams = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    terms = meta_objective(teacher, student, adapter, batch, fb_batch, config, fb, weight, branches)
    g_ce = torch.autograd.grad(terms.teacher_ce, tparams, retain_graph=True, allow_unused=True)
    g_fb = torch.autograd.grad(fb.lam * terms.lookahead_ce, tparams, allow_unused=True)
    for p, a, b in zip(tparams, g_ce, g_fb):
        p.grad = sum(g for g in (a, b) if g is not None) if (a is not None or b is not None) else None
    if fb.teacher_grad_clip is not None:
        nn.utils.clip_grad_norm_(tparams, fb.teacher_grad_clip)
    before = [p.detach().clone() for p in tparams]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    meta = float(terms.teacher_ce.detach() + fb.lam * terms.lookahead_ce.detach())
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
                    fb: FeedbackConfig) -> tuple[float, float]:
    """The metric-driven variant: scale the teacher's guidance from the accuracy gap.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    alpha, temperature : float
        The configured (base) KD weight and temperature.
    teacher_acc, student_acc : float
        Running validation accuracies.
    fb : FeedbackConfig
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

@torch.no_grad()
def _accuracy_and_fused(model: nn.Module, data: dict, batch_size: int,
                        branches: BranchOutputs | None = None) -> tuple[float, torch.Tensor]:
    """Eval-mode accuracy and fused tokens ``(N, L, F)`` of a model on tensors from to_tensors
    (of a teacher from its cached ``branches`` for the same windows, when given)."""
    model.eval()
    logits, fused = [], []
    for idx in iterate_batches(len(data["y"]), batch_size):
        out = _forward(model, data["eeg"][idx], data["eog"][idx], None if branches is None else branches.take(idx))
        logits.append(out.logits.float())  # (b, C)
        fused.append(out.fused.float())  # (b, L, F)
    acc = float((torch.cat(logits).argmax(-1) == data["y"]).float().mean())
    return acc, torch.cat(fused)


class _Loop:
    """State of one fold's feedback training: the step log, the guidance, the teacher's optimiser."""

    def __init__(self, teacher, model, train, val, quiz, task, config, train_config, weight, device):
        from .distill import teacher_targets

        self.teacher, self.model, self.config, self.fb = teacher, model, config, config.feedback_config
        self.weight, self.batch_size = weight, train_config.batch_size
        self.eval_bs, self.device, self.seed = train_config.eval_batch_size, device, train_config.seed
        self.tr = to_tensors(train, task, ("eeg", "eog"), device)
        probe = val if val is not None and len(val) else train
        self.va = to_tensors(probe, task, ("eeg", "eog"), device)
        self.gen = dataloader_generator(train_config.seed + 1)  # feedback batches: their own stream
        self.alpha, self.temperature = config.alpha, config.temperature
        self.loss_config = config
        self.step, self.epoch, self.rows, self.sums, self.n = 0, 1, [], {}, 0
        self.run_t = self.run_s = None
        self.tr_branches = self.va_branches = None
        self.targets = teacher_targets(teacher, train, self.eval_bs, device)  # as variation 2's, while unchanged
        self.changed, self.n_feedback = False, 0
        if config.feedback == "meta":
            self.qz = to_tensors(quiz, task, ("eeg", "eog"), device)
            if self.fb.teacher_scope == "fusion":  # the branches stay frozen: run them once
                self.tr_branches = branch_outputs(teacher, self.tr["eeg"], self.tr["eog"], self.eval_bs)
                self.va_branches = branch_outputs(teacher, self.va["eeg"], self.va["eog"], self.eval_bs)
            self.opt = torch.optim.Adam(feedback_parameters(teacher, self.fb.teacher_scope), lr=self.fb.teacher_lr)
        self.teacher_val_acc, self.teacher_val_fused = self.teacher_on_val()

    def batch_of(self, data: dict, index: torch.Tensor) -> Batch:
        i = index.to(data["y"].device)
        return Batch(data["eeg"][i], data["eog"][i], data["y"][i], index)  # (B, ...) each

    def branches_of(self, index: torch.Tensor) -> BranchOutputs | None:
        """The cached branch outputs of training windows ``index`` (None: scope "all")."""
        return None if self.tr_branches is None else self.tr_branches.take(index)

    def teacher_on_val(self) -> tuple[float, torch.Tensor]:
        """The teacher's validation accuracy and fused tokens (from the cached branches under "fusion")."""
        return _accuracy_and_fused(self.teacher, self.va, self.eval_bs, self.va_branches)

    def feedback(self, batch: Batch) -> dict:
        """One feedback step on its own random streams (quiz batch, look-ahead dropout)."""
        fb_batch = self.batch_of(self.qz, feedback_batch(len(self.qz["y"]), self.batch_size, self.gen))
        devices = [self.device] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the student's stream is left as it was
            torch.manual_seed(self.seed + 2 + self.step)
            row = feedback_step(self.teacher, self.model.student, self.model.adapter, self.opt, batch, fb_batch,
                                self.config, self.fb, self.weight, branches=self.branches_of(batch.index))
        self.n_feedback += 1
        self.changed = self.changed or row["teacher_update"] > 0
        return row

    def teacher_out(self, batch: Batch):
        """The teacher's outputs for a teaching batch: cached while it has not changed, else recomputed
        (from the cached branches under "fusion", from the windows under "all")."""
        if not self.changed:
            return self.targets.take(batch.index)
        branches = self.branches_of(batch.index)
        eeg = None if branches is not None else self.tr["eeg"][batch.index.to(self.tr["y"].device)]
        return teacher_outputs(self.teacher, eeg, batch.eog, branches)

    def loss_fn(self, m, batch: Batch):
        """``fit``'s loss: the feedback phase when due, then the teaching phase's student loss."""
        self.step += 1
        t0 = time.perf_counter()
        is_fb = self.config.feedback == "meta" and self.step > 1 and (self.step - 1) % self.fb.every_k == 0
        row = self.feedback(self.batch_of(self.tr, batch.index)) if is_fb else {}
        t_fb = time.perf_counter() - t0
        t_out = self.teacher_out(batch)
        out = m(eog=batch.eog)
        loss, parts = student_loss(out, t_out, batch.y, m.adapter, self.loss_config, self.weight)
        self.log(row, is_fb, t_fb, loss, parts, out.logits, t_out.logits, batch.y)
        return loss, out.logits

    def log(self, row, is_fb, t_fb, loss, parts, s_logits, t_logits, y):
        acc = lambda z: float((z.detach().argmax(-1) == y).float().mean())  # noqa: E731
        t_ce = float(cross_entropy(t_logits.detach(), y, self.weight))
        self.rows.append(dict(step=self.step, epoch=self.epoch, phase="feedback" if is_fb else "teaching",
                              student_loss=float(loss.detach()), **parts, student_acc=acc(s_logits),
                              teacher_ce_batch=t_ce, teacher_acc=acc(t_logits), alpha=self.alpha,
                              temperature=self.temperature,
                              meta_loss=row.get("meta_loss", math.nan), lookahead_ce=row.get("lookahead_ce", math.nan),
                              teacher_ce_grad=row.get("teacher_ce_grad", math.nan),
                              feedback_grad=row.get("feedback_grad", math.nan),
                              teacher_update=row.get("teacher_update", 0.0), feedback_s=t_fb if is_fb else 0.0))
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * len(y)
        self.n += len(y)

    def on_epoch_end(self, epoch: int, model) -> dict:
        """Per-epoch columns: loss parts and shares, CKA with the *current* teacher, accuracies, guidance."""
        hist = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        if self.changed:
            self.teacher_val_acc, self.teacher_val_fused = self.teacher_on_val()
        s_acc, s_fused = _accuracy_and_fused(model, self.va, self.eval_bs)
        ema = lambda run, x: x if run is None else self.fb.momentum * run + (1 - self.fb.momentum) * x  # noqa: E731
        self.run_t, self.run_s = ema(self.run_t, self.teacher_val_acc), ema(self.run_s, s_acc)
        hist.update(loss_shares(hist, self.alpha, self.config.beta))
        hist.update(cka=linear_cka(s_fused, self.teacher_val_fused), teacher_val_acc=self.teacher_val_acc,
                    alpha=self.alpha, temperature=self.temperature, feedback_steps=self.n_feedback)
        if self.config.feedback == "metric":  # the guidance of the next epoch
            self.alpha, self.temperature = metric_guidance(self.config.alpha, self.config.temperature,
                                                           self.run_t, self.run_s, self.fb)
            self.loss_config = replace(self.config, alpha=self.alpha, temperature=self.temperature)
        self.epoch += 1
        return hist

    def movement(self) -> dict:
        """How far the feedback moved the teacher on the teaching windows (per fold)."""
        if self.config.feedback != "meta":
            return {}
        with torch.no_grad():
            start = self.targets.logits  # (N, C) the teacher as it came
            end = torch.cat([teacher_outputs(self.teacher, self.tr["eeg"][idx], self.tr["eog"][idx],
                                             self.branches_of(idx)).logits.float()
                             for idx in iterate_batches(len(start), self.eval_bs)]) if self.changed else start
            p0, p1 = start.softmax(-1)[:, -1], end.softmax(-1)[:, -1]  # (N,) high-class probability
            flips = (start.argmax(-1) != end.argmax(-1)).float().mean()
        return dict(feedback_steps=self.n_feedback, teacher_dp=float((p1 - p0).abs().mean()),
                    teacher_flips=float(flips))


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
    quiz : WindowSet
        Held-out training trials, normalised like ``train`` (:attr:`kdlib.data.splits.Fold.quiz`):
        the feedback batches of ``"meta"`` (required there; not read by ``"metric"``). No other
        data enters.
    task : {'valence', 'arousal'}
    config : DistillConfig
        ``feedback`` in {"meta", "metric"}; knobs in ``config.feedback_config``.
    train_config : TrainConfig
        The student's training (as in variation 2).
    model_config : ModelConfig, optional
        Default ``teacher.config``.
    desc : str, optional

    Returns
    -------
    DistillResult
        As for variation 2, plus ``steps`` (one row per training step: phase, both losses,
        both batch accuracies, ``alpha``, ``temperature``, the feedback terms, gradient norms and
        the size of the teacher's update), ``teacher`` (the fed-back copy, final state) and
        ``feedback`` (steps, the teacher's movement; ``"meta"`` only).
    """
    from .distill import DistillResult, _ce_weight, build_student

    t0 = time.perf_counter()
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
    device = choose_device(train_config.device)
    model_config = model_config or teacher.config
    teacher = copy.deepcopy(teacher).to(device).eval()  # the caller's teacher stays as it is
    seed_everything(train_config.seed)
    model = build_student(model_config, config, teacher).to(device)
    weight = _ce_weight(train_config, train.labels(task), model_config.n_classes, device)
    loop = _Loop(teacher, model, train, val, quiz, task, config, train_config, weight, device)
    cka_init = linear_cka(_accuracy_and_fused(model, loop.va, loop.eval_bs)[1], loop.teacher_val_fused)
    result = fit(model, train, val, task, train_config, loss_fn=loop.loss_fn,
                 desc=desc or f"{config.method} {task}", on_epoch_end=loop.on_epoch_end)
    teacher.eval()
    return DistillResult(student=model.student, adapter=model.adapter, history=result.history,
                         best_epoch=result.best_epoch, cka_init=cka_init, config=config,
                         train_config=train_config, fit=result, seconds=time.perf_counter() - t0,
                         steps=pd.DataFrame(loop.rows), teacher=teacher, feedback=loop.movement())
