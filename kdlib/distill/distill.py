"""``distill``: train the EOG-only student from a frozen teacher, one configuration per variation.

Introduced in ``notebooks/03_student_alignment.ipynb``.

One function, four configurations of the ablation (``PRESETS``)::

    scratch  CE only, no teacher                        the baseline distillation must beat
    v1       CE + alpha * Hinton KD                     variation 1
    v2       CE + alpha * Hinton KD + beta * feature    variation 2 (fused-feature distillation)
    v3       v2 + dynamic feedback (feedback="meta")    variation 3 (the paper's full method)

This module trains the first three (``feedback="none"``: the teacher is frozen).
``kdlib.distill.distill`` (the package's, :mod:`kdlib.distill.run`) takes all four and hands ``v3``
(any ``feedback != "none"``) to :func:`kdlib.distill.feedback.distill_feedback` (same signature,
same result, plus a per-step log), which builds on this module: it alternates teaching steps
with feedback steps that update a *copy* of the teacher. Introduced in
``notebooks/04_dynamic_feedback_distillation.ipynb``.

How :func:`distill` runs, per fold::

    teacher.eval(); no gradient; targets = teacher(train windows)    # once: logits, fused
    student = EOGStudent (+ teacher's EOG branch if init_from_teacher) + FeatureAdapter
    kdlib.train.fit(student+adapter, train, val, loss_fn=student_loss on targets[batch.index])
                                              # fit owns the epochs, the optimiser step, early stopping

The teacher is frozen and in eval mode, so its outputs for a training window never change: they
are computed once per fold and looked up by ``Batch.index`` (for a DEAP subject, the fused
features of ~500 windows x 61 tokens x 128 features take ~15 MB). Validation (early stopping,
best epoch) scores the student's own cross-entropy on validation trials, as for every model.

Defaults (``DistillConfig``)
----------------------------
``alpha = 1``, ``beta = 0.3``, ``T = 2``, MSE on standardised tokens (``feature_norm="layernorm"``,
:mod:`kdlib.distill.losses` says why), linear adapter, student trained from scratch. The
predecessor (EmotionKD) used ``alpha = 0.1``, ``beta = 1`` and no temperature. kdlib adds Hinton's
temperature because the paper's ablation names "Hinton KD" (``T = 2``: with two classes a larger
``T`` flattens the teacher's distribution towards uniform and hides what it knows; ``T^2`` keeps
the term's gradient comparable across ``T``).

``alpha`` and ``beta`` were chosen by a sweep scored on **validation trials only**
(``benchmarks/sweep_defaults.py --stage loss``: variation 2 over ``alpha`` in {0.25, 0.5, 1} x
``beta`` in {0.1, 0.3, 1}, kit-size models, 4 synthetic subjects x 2 tasks, fold 0 with its quiz
held out; the scores and the loss shares are recorded in ``benchmarks/results/sweep_loss.md``).
``alpha = 1, beta = 0.3`` had the best mean validation accuracy, but every other setting was
within about one standard error of it, so the sweep does not rank them beyond noise. The choice
also keeps every term of the loss visible at the best epoch (cross-entropy most of it, KD and
the feature term each a visible share). At ``alpha = 0.1`` (the predecessor's) the KD term is a
few percent of the loss and changes nothing. Learning rate: the teacher's (``TrainConfig``,
lr 1e-3); the predecessor's 1e-6 would need far more epochs than a CPU affords.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from kdlib import batched
from kdlib.data.windows import WindowSet
from kdlib.models import EOGStudent, FeatureAdapter
from kdlib.repro import choose_device, seed_everything
from kdlib.train import DEFAULT as DEFAULT_TRAIN
from kdlib.train import (Batch, FitResult, TrainConfig, ce_weights, fit, infer, iterate_batches, optimizer_step,
                         to_tensors)

from .cka import linear_cka
from .config import PRESETS, SCRATCH, V1, V2, V3, DistillConfig  # noqa: F401  (also importable from here)
from .losses import loss_shares, student_loss, student_loss_terms
from .targets import TeacherTargets, frozen, teacher_targets

__all__ = ["StudentWithAdapter", "build_student", "DistillResult", "ce_weight", "teaching_step", "distill",
           "distill_batched"]


# --- the student as trained: EOGStudent + its adapter --------------------------------------------

class StudentWithAdapter(nn.Module):
    """The student and its feature adapter as one module, so that one optimiser trains both and
    early stopping restores both. ``forward`` is the student's (EOG only); the adapter is used
    by the loss alone and dropped after training.

    Parameters
    ----------
    student : EOGStudent
    adapter : FeatureAdapter
    """

    modalities = ("eog",)

    def __init__(self, student: EOGStudent, adapter: FeatureAdapter):
        super().__init__()
        self.student, self.adapter = student, adapter
        self.config = student.config

    def forward(self, eeg: None = None, eog: torch.Tensor | None = None):
        """The student's forward pass (the adapter is not used).

        Parameters
        ----------
        eeg : None
            The student reads no EEG.
        eog : Tensor (B, n_eog, T)

        Returns
        -------
        StudentOutput
        """
        return self.student(eeg=eeg, eog=eog)  # StudentOutput


def build_student(model_config, config: DistillConfig = V2, teacher: nn.Module | None = None) -> StudentWithAdapter:
    """A fresh student and adapter for ``config`` (seed first for identical weights).

    Parameters
    ----------
    model_config : ModelConfig
        The teacher's config.
    config : DistillConfig
        ``adapter`` picks the adapter; ``init_from_teacher`` copies ``teacher.eog``.
    teacher : FusionTeacher, optional
        Required when ``config.init_from_teacher``.

    Returns
    -------
    StudentWithAdapter
    """
    student = EOGStudent(model_config)
    adapter = FeatureAdapter(model_config.d_model, 2 * model_config.d_model, config.adapter)
    if config.init_from_teacher:
        if teacher is None:
            raise ValueError("init_from_teacher=True needs the teacher")
        student.init_from_teacher(teacher)
    return StudentWithAdapter(student, adapter)


# --- distill --------------------------------------------------------------------------------------

@dataclass(eq=False)
class DistillResult:
    """What :func:`distill` returns.

    Attributes
    ----------
    student : EOGStudent
        Trained, best validation epoch restored, eval mode. Use it alone at test time.
    adapter : FeatureAdapter
        Trained with the student (untrained when ``beta = 0``); not needed at test time.
    history : pandas.DataFrame
        One row per epoch: :func:`kdlib.train.fit`'s columns, plus the loss parts ``ce``,
        ``kd`` (``T^2 KL``), ``feat`` (NaN when unused) averaged over the epoch's training
        windows, their weighted shares of the loss ``share_ce``, ``share_kd``, ``share_feat``
        (:func:`~kdlib.distill.losses.loss_shares`), and ``cka`` (linear CKA between the
        student's and the teacher's fused tokens on the validation windows; NaN without teacher).
    best_epoch : int
    cka_init : float
        ``cka`` of the untrained student (epoch 0).
    config : DistillConfig
    train_config : TrainConfig
    fit : FitResult
    seconds : float
        Wall time, the teacher's forward pass included.
    steps : pandas.DataFrame or None
        With feedback only: one row per training step (phase, losses, accuracies, guidance,
        the teacher's update); see :func:`kdlib.distill.feedback.distill_feedback`.
    teacher : nn.Module or None
        With ``feedback="meta"``/``"metric"`` only: the trained copy of the teacher (final state).
    feedback : dict
        With ``feedback="meta"`` only: ``feedback_steps`` (how many feedback steps the fold
        made), ``teacher_dp`` (mean ``|p_final - p_initial|`` of the teacher's high-class
        probability on the teaching windows) and ``teacher_flips`` (share of teaching windows
        whose teacher prediction changed).
    """

    student: EOGStudent
    adapter: FeatureAdapter
    history: pd.DataFrame
    best_epoch: int
    cka_init: float
    config: DistillConfig
    train_config: TrainConfig = field(repr=False)
    fit: FitResult = field(repr=False)
    seconds: float = 0.0
    steps: pd.DataFrame | None = field(default=None, repr=False)
    teacher: nn.Module | None = field(default=None, repr=False)
    feedback: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Per-fold numbers for a results table: the loss shares at the best epoch and, for
        variation 3, :attr:`feedback`."""
        best = self.history.loc[self.history["epoch"] == self.best_epoch]
        shares = {c: float(best[c].iloc[0]) for c in ("share_ce", "share_kd", "share_feat")
                  if c in best and len(best)}
        return {**shares, **self.feedback}


def ce_weight(train_config: TrainConfig, y: np.ndarray, n_classes: int, device) -> torch.Tensor | None:
    """The cross-entropy class weights :func:`kdlib.train.fit` uses (:func:`kdlib.train.ce_weights`), as a tensor.

    Parameters
    ----------
    train_config : TrainConfig
        ``class_weight``.
    y : ndarray (N,)
        The training labels.
    n_classes : int
    device : torch.device or str

    Returns
    -------
    Tensor (C,) or None
    """
    w = ce_weights(train_config.class_weight, y, n_classes)
    return None if w is None else torch.as_tensor(w, device=device)


def teaching_step(model: nn.Module, optimizer: torch.optim.Optimizer, eog: torch.Tensor, y: torch.Tensor,
                  teacher_out, config: DistillConfig, weight: torch.Tensor | None = None,
                  grad_clip: float | None = 1.0, scheduler=None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One optimisation step of the student on one batch (the *teaching* phase of the feedback method).

    Introduced in ``notebooks/03_student_alignment.ipynb``. The student loss
    (:func:`~kdlib.distill.losses.student_loss`), then :func:`kdlib.train.optimizer_step`.

    Parameters
    ----------
    model : StudentWithAdapter
        The student and its adapter (``model.student``, ``model.adapter``); both are updated.
    optimizer : torch.optim.Optimizer
        Over ``model.parameters()`` (and nothing of the teacher).
    eog : Tensor (B, n_eog, T)
    y : Tensor (B,)
    teacher_out : TeacherOutput or TeacherTargets
        The teacher's outputs for these windows, computed without gradient (detach them).
    config : DistillConfig
    weight : Tensor (C,), optional
    grad_clip : float, optional
        Clip the global gradient norm of ``model`` to this.
    scheduler : optional
        Stepped after the optimiser.

    Returns
    -------
    loss : Tensor () (detached)
    logits : Tensor (B, C) (detached)
    parts : dict
    """
    model.train()
    out = model(eeg=None, eog=eog)
    loss, parts = student_loss(out, teacher_out, y, model.adapter, config, weight)
    optimizer_step(loss, optimizer, model.parameters(), grad_clip, scheduler)
    return loss.detach(), out.logits.detach(), parts


def student_fused(model: nn.Module, eog: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The student's fused tokens ``(N, L, d)`` for every window (eval mode, no gradient).

    Parameters
    ----------
    model : StudentWithAdapter or EOGStudent
    eog : Tensor (N, n_eog, T)
    batch_size : int

    Returns
    -------
    Tensor (N, L, d)
    """
    return infer(model, {"eeg": None, "eog": eog}, batch_size, keep=lambda out: out.fused)


class _EpochLog:
    """``fit``'s ``on_epoch_end``: the loss shares of the epoch's averaged parts, and CKA on the probe."""

    def __init__(self, probe_eog: torch.Tensor | None, probe_fused: torch.Tensor | None, config: DistillConfig):
        self.probe_eog, self.probe_fused, self.config = probe_eog, probe_fused, config

    def cka(self, model) -> float:
        if self.probe_fused is None:
            return math.nan
        return linear_cka(student_fused(model, self.probe_eog), self.probe_fused)

    def __call__(self, epoch: int, model, row: dict) -> dict:
        return {**loss_shares(row, self.config.alpha, self.config.beta), "cka": self.cka(model)}


def distill(teacher: nn.Module | None, train: WindowSet, val: WindowSet | None, task: str,
            config: DistillConfig = V2, train_config: TrainConfig = DEFAULT_TRAIN, *,
            model_config=None, desc: str | None = None, quiz: WindowSet | None = None) -> DistillResult:
    """Train the EOG-only student of one fold from the fold's frozen teacher.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    teacher : FusionTeacher or None
        Trained on *this fold's* training trials (a teacher trained elsewhere leaks the test
        trials through its soft labels). Frozen here: eval mode, no gradient, parameters
        untouched. ``None`` only for ``config.needs_teacher == False``, with ``model_config``
        (then no CKA either).
    train, val : WindowSet
        The fold's training and validation windows (normalised like the teacher's).
    task : {'valence', 'arousal'}
    config : DistillConfig
        One of :data:`PRESETS` or a variant.
    train_config : TrainConfig
        Epochs, batch size, learning rate, early stopping (as for the teacher).
    model_config : ModelConfig, optional
        The student's sizes; default ``teacher.config`` (required without a teacher).
    desc : str, optional
        Progress-bar label.
    quiz : WindowSet, optional
        Held-out training-side windows (:attr:`kdlib.data.splits.Fold.quiz`, normalised like
        ``train``): where variation 3's feedback phase scores the temporary student. Required
        for ``feedback="meta"``, not read otherwise (so every variation trains on ``train``).

    Returns
    -------
    DistillResult

    Notes
    -----
    ``config.feedback != "none"`` (variation 3) is refused here: ``kdlib.distill.distill`` (the
    package's entry, :mod:`kdlib.distill.run`) hands it to
    :func:`kdlib.distill.feedback.distill_feedback` (notebook 04), where the teacher is copied and
    updated in feedback steps and ``result.steps`` holds the per-step log.
    """
    if config.feedback != "none":
        raise ValueError(f"{config.method}: feedback={config.feedback!r} trains a copy of the teacher too: call "
                         f"kdlib.distill.distill (which hands it to kdlib.distill.feedback.distill_feedback)")
    t0 = time.perf_counter()
    if teacher is None and (config.needs_teacher or config.init_from_teacher):
        raise ValueError(f"{config.method}: this configuration needs the teacher")
    device = choose_device(train_config.device)
    model_config = model_config or getattr(teacher, "config", None)
    if model_config is None:
        raise ValueError("distill without a teacher needs model_config")
    targets, probe = None, (None, None)
    if teacher is not None:
        with frozen(teacher):
            targets = teacher_targets(teacher, train, train_config.eval_batch_size, device)
            probe_ws = val if val is not None and len(val) else train
            probe = (to_tensors(probe_ws, None, ("eog",), device)["eog"],
                     teacher_targets(teacher, probe_ws, train_config.eval_batch_size, device).fused)

    seed_everything(train_config.seed)
    model = build_student(model_config, config, teacher).to(device)
    weight = ce_weight(train_config, train.labels(task), model_config.n_classes, device)
    log = _EpochLog(*probe, config)
    cka_init = log.cka(model)

    def loss_fn(m: StudentWithAdapter, batch: Batch):  # fit steps the optimiser and averages the parts
        out = m(eog=batch.eog)
        t = targets.take(batch.index) if targets is not None else None
        loss, parts = student_loss(out, t, batch.y, m.adapter, config, weight)
        return loss, out.logits, parts

    result = fit(model, train, val, task, train_config, loss_fn=loss_fn, desc=desc or f"{config.method} {task}",
                 on_epoch_end=log)
    return DistillResult(student=model.student, adapter=model.adapter, history=result.history,
                         best_epoch=result.best_epoch, cka_init=cka_init, config=config,
                         train_config=train_config, fit=result, seconds=time.perf_counter() - t0)


# --- the fold-batched path -------------------------------------------------------------------------

def _stack_targets(teachers, sets, batch_size, device) -> TeacherTargets:
    """Each member's teacher over its own windows, stacked and padded: ``(K, N, C)``, ``(K, N, L, 2d)``."""
    per = [teacher_targets(t, ws, batch_size, device) for t, ws in zip(teachers, sets)]
    width = max(len(p.logits) for p in per)

    def pad(x):  # (n, ...) -> (width, ...)
        return torch.cat([x, x.new_zeros((width - len(x),) + tuple(x.shape[1:]))])
    return TeacherTargets(torch.stack([pad(p.logits) for p in per]), torch.stack([pad(p.fused) for p in per]))


class _BatchedEpochLog:
    """:class:`_EpochLog` for a stacked ensemble: loss shares from each member's row, CKA of each
    member's fused tokens against its own teacher's on its own probe windows."""

    def __init__(self, probe: dict | None, probe_fused: torch.Tensor | None, config: DistillConfig,
                 batch_size: int = 256):
        self.probe, self.probe_fused, self.config, self.batch_size = probe, probe_fused, config, batch_size

    def cka(self, ens, ids) -> list[float]:
        if self.probe_fused is None:
            return [math.nan] * len(ids)
        rows = torch.tensor(ids, device=self.probe["eog"].device)
        fused = []
        with torch.no_grad():
            for idx in iterate_batches(max(self.probe["n"][i] for i in ids), self.batch_size):
                idx = idx.to(rows.device)
                eog = self.probe["eog"][rows[:, None], idx[None, :]]  # (K, b, n_eog, T)
                fused.append(ens.map(lambda m, e: m(eog=e).fused, eog))  # (K, b, L, d)
        fused = torch.cat(fused, dim=1)  # (K, N, L, d)
        return [linear_cka(fused[r, :self.probe["n"][i]], self.probe_fused[i, :self.probe["n"][i]])
                for r, i in enumerate(ids)]

    def __call__(self, epoch: int, ens, rows: list[dict]) -> list[dict]:
        c = self.config
        return [{**loss_shares(row, c.alpha, c.beta), "cka": ck} for row, ck in zip(rows, self.cka(ens, ens.members))]


def distill_batched(teachers: list[nn.Module] | None, trains: list[WindowSet], vals: list[WindowSet | None],
                    task: str, config: DistillConfig = V2, train_config: TrainConfig = DEFAULT_TRAIN, *,
                    model_config=None) -> list[DistillResult]:
    """:func:`distill` for the K folds of one subject x task x seed at once (:mod:`kdlib.batched`).

    Parameters
    ----------
    teachers : list of FusionTeacher, or None
        Member k's teacher, trained on member k's fold (``None`` for ``scratch``).
    trains, vals : list of WindowSet
        Each member's fold; training sets of one length (:func:`kdlib.batched.group_by_size`).
    task : {'valence', 'arousal'}
    config : DistillConfig
        Variations without feedback only (``scratch``, ``v1``, ``v2``); variation 3 stays
        sequential (:func:`distill`).
    train_config : TrainConfig
    model_config : ModelConfig, optional
        Default: the teachers' config.

    Returns
    -------
    list of DistillResult
        One per member, as :func:`distill` returns (same history columns); ``seconds`` is the
        batch's wall time divided by K.

    Notes
    -----
    Agreement with :func:`distill` per member: see :mod:`kdlib.batched` (float rounding without
    dropout; the KD term is written out, ``hinton_kd(vmap_safe=True)``).
    """
    if config.feedback != "none":
        raise ValueError(f"{config.method}: the feedback loop is not batched; use distill()")
    if teachers is None and (config.needs_teacher or config.init_from_teacher):
        raise ValueError(f"{config.method}: this configuration needs the teacher")
    t0 = time.perf_counter()
    device = choose_device(train_config.device)
    model_config = model_config or teachers[0].config
    aux, probe, probe_fused = {}, None, None
    if teachers is not None:
        probes = [v if v is not None and len(v) else t for v, t in zip(vals, trains)]
        for t in teachers:
            t.to(device)
        targets = _stack_targets(teachers, trains, train_config.eval_batch_size, device)
        aux = {"t_logits": targets.logits, "t_fused": targets.fused}  # (K, N, C), (K, N, L, 2d)
        probe = batched.stack_windows(probes, None, ("eog",), device)
        probe_fused = _stack_targets(teachers, probes, train_config.eval_batch_size, device).fused
    models = []
    for k in range(len(trains)):
        seed_everything(train_config.seed)
        models.append(build_student(model_config, config, teachers[k] if teachers is not None else None).to(device))
    log = _BatchedEpochLog(probe, probe_fused, config, train_config.eval_batch_size)
    cka_init = _cka_init(models, log, device)

    def loss_fn(m: StudentWithAdapter, batch: Batch, a: dict):
        out = m(eog=batch.eog)
        t = TeacherTargets(a["t_logits"], a["t_fused"]) if "t_logits" in a else None
        loss, parts = student_loss_terms(out, t, batch.y, m.adapter, config, a.get("weight"), vmap_safe=True)
        return loss, out.logits, parts

    fits = batched.fit_batched(models, trains, vals, task, train_config, loss_fn=loss_fn, aux=aux,
                               on_epoch_end=log)
    seconds = (time.perf_counter() - t0) / len(trains)
    return [DistillResult(student=m.student, adapter=m.adapter, history=f.history, best_epoch=f.best_epoch,
                          cka_init=c, config=config, train_config=train_config, fit=f, seconds=seconds)
            for m, f, c in zip(models, fits, cka_init)]


def _cka_init(models, log: _BatchedEpochLog, device) -> list[float]:
    """Each untrained student's CKA (epoch 0), through the same stacked path as the epochs'."""
    return log.cka(batched.Ensemble(models, device), list(range(len(models))))
