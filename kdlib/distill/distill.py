"""``distill``: train the EOG-only student from a frozen teacher, one configuration per variation.

Introduced in ``notebooks/03_student_alignment.ipynb``.

One function, four configurations of the ablation (``PRESETS``)::

    scratch  CE only, no teacher                        the baseline distillation must beat
    v1       CE + alpha * Hinton KD                     variation 1
    v2       CE + alpha * Hinton KD + beta * feature    variation 2 (fused-feature distillation)
    v3       v2 + dynamic feedback (feedback="meta")    variation 3 (the paper's full method)

``v3`` (any ``feedback != "none"``) is dispatched to
:func:`kdlib.distill.feedback.distill_feedback` (same signature, same result, plus a per-step
log): it alternates teaching steps with feedback steps that update a *copy* of the teacher, so
the frozen-teacher description below holds for ``feedback="none"`` only. Introduced in
``notebooks/04_dynamic_feedback_distillation.ipynb``.

How :func:`distill` runs, per fold::

    teacher.eval(); no gradient; targets = teacher(train windows)    # once: logits, fused
    student = EOGStudent (+ teacher's EOG branch if init_from_teacher) + FeatureAdapter
    kdlib.train.fit(student+adapter, train, val, loss_fn=student_loss on targets[batch.index])

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
(``benchmarks/sweep_defaults.py --stage loss``, recorded in ``benchmarks/results/sweep_loss.md``:
variation 2 over ``alpha`` in {0.25, 0.5, 1} x ``beta`` in {0.1, 0.3, 1}, kit-size models, 8 units =
4 synthetic subjects x 2 tasks, fold 0 with its quiz held out). ``alpha = 1, beta = 0.3`` had the
best mean validation accuracy (0.599 ± 0.033 SE over units) and the second-lowest validation loss;
every other setting was within about one standard error of it (0.565-0.592), so the sweep does not
rank them beyond noise. The choice also keeps every term visible: at the best epoch the loss is
about 75 % cross-entropy, 8 % KD and 18 % feature term (with ``beta = 1`` the standardised feature
term is about 30 %; before standardisation it was 88 % of the loss). At ``alpha = 0.1`` (the
predecessor's) an earlier check gave exactly the scratch student's validation scores: the KD term
is a few percent of the loss and changes nothing. Learning rate: the teacher's (``TrainConfig``,
lr 1e-3); the predecessor's 1e-6 would need far more epochs than a CPU affords.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from kdlib.data.windows import WindowSet
from kdlib.models import ADAPTERS, EOGStudent, FeatureAdapter
from kdlib.repro import choose_device, seed_everything
from kdlib.train import DEFAULT as DEFAULT_TRAIN
from kdlib.train import Batch, FitResult, TrainConfig, class_weights, fit, iterate_batches, to_tensors

from .cka import linear_cka
from .feedback import FEEDBACK_MODES, FeedbackConfig
from .losses import FEATURE_LOSSES, FEATURE_NORMS, loss_shares, student_loss, student_loss_terms

__all__ = ["DistillConfig", "SCRATCH", "V1", "V2", "V3", "PRESETS", "TeacherTargets", "teacher_targets",
           "StudentWithAdapter", "build_student", "frozen", "DistillResult", "distill", "distill_batched"]


@dataclass(frozen=True)
class DistillConfig:
    """How the student learns from the teacher. Frozen: make variants with ``dataclasses.replace``."""

    method: str = "v2"  # a name for tables and plots ("scratch", "v1", "v2", ...)
    alpha: float = 1.0  # weight of the Hinton KD term (0: no soft labels); validation sweep, see the module docstring
    beta: float = 0.3  # weight of the standardised fused-feature term (0: no feature distillation)
    temperature: float = 2.0  # softmax temperature T of the KD term (scaled by T^2)
    feature_loss: Literal["mse", "cosine"] = "mse"  # distance between adapted features
    feature_norm: Literal["layernorm", "none"] = "layernorm"  # standardise each token before comparing (losses.py)
    adapter: Literal["linear", "pool"] = "linear"  # learned d -> 2d on the student, or pool 2d -> d on the teacher
    init_from_teacher: bool = False  # start the student's EOG branch from the teacher's (ablation)
    feedback: Literal["none", "meta", "metric"] = "none"  # variation 3: "meta" (default of v3) or "metric"
    feedback_config: FeedbackConfig = FeedbackConfig()  # k, lambda, look-ahead lr, teacher lr, ... (feedback.py)

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {self.feature_norm!r}")
        if self.feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss must be one of {sorted(FEATURE_LOSSES)}, got {self.feature_loss!r}")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {ADAPTERS}, got {self.adapter!r}")
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {self.feedback!r}")
        if self.feedback != "none" and not (self.alpha or self.beta):
            raise ValueError(f"feedback={self.feedback!r} needs alpha > 0 or beta > 0 (the teacher must teach)")

    @property
    def needs_teacher(self) -> bool:
        """Whether training uses the teacher's outputs (``alpha > 0`` or ``beta > 0``)."""
        return bool(self.alpha or self.beta)


V2 = DistillConfig()  # variation 2: Hinton KD + fused-feature distillation
V1 = replace(V2, method="v1", beta=0.0)  # variation 1: Hinton KD only
SCRATCH = replace(V2, method="scratch", alpha=0.0, beta=0.0)  # EOG-only student, no teacher
V3 = replace(V2, method="v3", feedback="meta")  # variation 3: v2 + dynamic feedback (meta-gradient)
PRESETS: dict[str, DistillConfig] = {"scratch": SCRATCH, "v1": V1, "v2": V2, "v3": V3}


# --- the frozen teacher's outputs, once per fold ------------------------------------------------

class TeacherTargets(NamedTuple):
    """The teacher's outputs for every window of a WindowSet, in its order.

    Attributes
    ----------
    logits : Tensor (N, C)
    fused : Tensor (N, L, 2d)
    """

    logits: torch.Tensor
    fused: torch.Tensor

    def take(self, index: torch.Tensor) -> TeacherTargets:
        """The rows of a mini-batch: ``(B,)`` indices -> logits ``(B, C)``, fused ``(B, L, 2d)``."""
        index = index.to(self.logits.device)
        return TeacherTargets(self.logits[index], self.fused[index])


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and ``requires_grad=False`` inside the block; the flags are restored after
    (the mode is left in eval)."""
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    model.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


@torch.no_grad()
def teacher_targets(teacher: nn.Module, ws: WindowSet, batch_size: int = 256,
                    device: torch.device | str | None = None) -> TeacherTargets:
    """Run the frozen teacher (eval mode, no gradient) over ``ws`` once.

    Parameters
    ----------
    teacher : FusionTeacher
    ws : WindowSet
    batch_size : int
    device : optional
        Where to keep the targets (default: the teacher's device).

    Returns
    -------
    TeacherTargets
        Detached ``logits (N, C)`` and ``fused (N, L, 2d)``.
    """
    tdev = next(teacher.parameters()).device
    data = to_tensors(ws, None, ("eeg", "eog"), tdev)
    logits, fused = [], []
    with frozen(teacher):
        for idx in iterate_batches(len(ws), batch_size):
            out = teacher(eeg=data["eeg"][idx], eog=data["eog"][idx])
            logits.append(out.logits.float())  # (b, C)
            fused.append(out.fused.float())  # (b, L, 2d)
    device = tdev if device is None else device
    return TeacherTargets(torch.cat(logits).to(device), torch.cat(fused).to(device))


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


def _ce_weight(train_config: TrainConfig, y: np.ndarray, n_classes: int, device) -> torch.Tensor | None:
    """The cross-entropy class weights :func:`kdlib.train.fit` would use."""
    cw = train_config.class_weight
    if cw is None:
        return None
    w = class_weights(y, n_classes) if cw == "balanced" else np.asarray(cw, dtype=np.float32)
    return torch.as_tensor(w, device=device)


@torch.no_grad()
def _student_fused(model: StudentWithAdapter, eog: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(eog=eog[idx]).fused for idx in iterate_batches(len(eog), batch_size)])  # (N, L, d)


class _EpochLog:
    """Accumulates the loss parts of an epoch (weighted by batch size) and scores CKA at its end."""

    def __init__(self, probe_eog: torch.Tensor | None, probe_fused: torch.Tensor | None, config: DistillConfig):
        self.probe_eog, self.probe_fused, self.config = probe_eog, probe_fused, config
        self.sums, self.n = {}, 0

    def add(self, parts: dict, n: int):
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * n
        self.n += n

    def cka(self, model) -> float:
        if self.probe_fused is None:
            return math.nan
        return linear_cka(_student_fused(model, self.probe_eog), self.probe_fused)

    def __call__(self, epoch: int, model) -> dict:
        row = {k: v / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        row.update(loss_shares(row, self.config.alpha, self.config.beta), cka=self.cka(model))
        return row


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
    ``config.feedback != "none"`` (variation 3) hands over to
    :func:`kdlib.distill.feedback.distill_feedback` (notebook 04): the teacher is then copied
    and updated in feedback steps, and ``result.steps`` holds the per-step log.
    """
    if config.feedback != "none":
        from .feedback import distill_feedback
        return distill_feedback(teacher, train, val, task, config, train_config, model_config=model_config, desc=desc,
                                quiz=quiz)
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
    weight = _ce_weight(train_config, train.labels(task), model_config.n_classes, device)
    log = _EpochLog(*probe, config)
    cka_init = log.cka(model)

    def loss_fn(m: StudentWithAdapter, batch: Batch):
        out = m(eog=batch.eog)
        t = targets.take(batch.index) if targets is not None else None
        loss, parts = student_loss(out, t, batch.y, m.adapter, config, weight)
        log.add(parts, len(batch.y))
        return loss, out.logits

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
    from kdlib.batched import fit_batched, stack_windows

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
        probe = stack_windows(probes, None, ("eog",), device)
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

    fits = fit_batched(models, trains, vals, task, train_config, loss_fn=loss_fn, aux=aux, on_epoch_end=log)
    seconds = (time.perf_counter() - t0) / len(trains)
    return [DistillResult(student=m.student, adapter=m.adapter, history=f.history, best_epoch=f.best_epoch,
                          cka_init=c, config=config, train_config=train_config, fit=f, seconds=seconds)
            for m, f, c in zip(models, fits, cka_init)]


def _cka_init(models, log: _BatchedEpochLog, device) -> list[float]:
    """Each untrained student's CKA (epoch 0), through the same stacked path as the epochs'."""
    from kdlib.batched import Ensemble

    return log.cka(Ensemble(models, device), list(range(len(models))))
