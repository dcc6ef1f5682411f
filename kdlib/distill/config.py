"""Configurations of the student's training: :class:`DistillConfig`, the knobs of variation 3's two
feedback modes (:class:`FeedbackConfig` for "meta", :class:`GuidanceConfig` for "metric") and the
ablation's presets (``PRESETS``). Plain frozen dataclasses, no torch: the bottom layer of
:mod:`kdlib.distill`.

Introduced in ``notebooks/03_student_alignment.ipynb`` (``DistillConfig``) and
``notebooks/04_dynamic_feedback_distillation.ipynb`` (``FeedbackConfig``).

The layers of :mod:`kdlib.distill`, each importing only those above it::

    config    DistillConfig, FeedbackConfig, GuidanceConfig, PRESETS   (this module; no torch)
    losses    CE, Hinton KD, feature KD, the student loss      (pure functions of alpha, beta, T)
    targets   the teacher's outputs: cached once per fold, or per batch (frozen-teacher helpers)
    distill   the student from a frozen teacher (scratch, v1, v2) and its fold-batched version
    feedback  variation 3: teaching steps and feedback steps that update a copy of the teacher
    run       ``distill()``: one entry for every variation (v3 goes to feedback, the rest to distill)

Why the defaults are what they are: :mod:`kdlib.distill.distill` (``alpha``, ``beta``, ``T``) and
:mod:`kdlib.distill.feedback` (the feedback schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["DistillConfig", "FeedbackConfig", "GuidanceConfig", "SCRATCH", "V1", "V2", "V3", "PRESETS", "FEEDBACK_MODES",
           "TEACHER_SCOPES", "FEATURE_NORMS", "FEATURE_LOSS_NAMES", "ADAPTERS"]

FEEDBACK_MODES = ("none", "meta", "metric")  # DistillConfig.feedback
TEACHER_SCOPES = ("fusion", "all")  # FeedbackConfig.teacher_scope
FEATURE_NORMS = ("layernorm", "none")  # DistillConfig.feature_norm (kdlib.distill.losses)
FEATURE_LOSS_NAMES = ("mse", "cosine")  # DistillConfig.feature_loss: the keys of losses.FEATURE_LOSSES
ADAPTERS = ("linear", "pool")  # DistillConfig.adapter: kdlib.models.ADAPTERS (tests check they agree)


@dataclass(frozen=True)
class FeedbackConfig:
    """The knobs of the meta-gradient feedback phase (``feedback="meta"``; ``DistillConfig.feedback_config``).

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Notes
    -----
    ``teacher_scope`` says which of the teacher's parameters the feedback phase (``"meta"``)
    updates. ``"fusion"`` (default): the fusion module and the classification head, i.e. what
    comes after the two modality branches; the EEG and EOG branches stay frozen, so
    :func:`~kdlib.distill.feedback.distill_feedback` runs them once per fold and caches their outputs (every depth,
    ``2 * n_layers`` tensors ``(N, L, d)``: about 94 kB per window at the DEFAULT sizes, 45 MB
    for 480 windows). The paper's feedback phase "adjusts the teacher according to the
    student's performance"; adjusting how it fuses the modalities and maps them to targets is a
    legitimate reading, and it keeps variation 3's cost per fold close to variation 2's. ``"all"``:
    the whole teacher learns and runs in full on every batch (several times variation 2's cost per
    fold; the measurements are in ``benchmarks/results/bench_feedback.md``). ``"fusion"`` needs a
    teacher with ``.eeg`` and ``.eog`` branches and ``.branches``/``.fuse`` methods
    (:class:`~kdlib.models.FusionTeacher`, :class:`~kdlib.models.LateFusionTeacher`, whose
    "fusion" is its head only).

    ``teacher_ce`` says whether the teacher's loss keeps its own cross-entropy on the teaching
    batch, ``CE_t + lambda * CE(student_theta')`` (``True``, the default), or is the meta term
    ``lambda * CE(student_theta')`` alone (``False``): an ablation that shows what the teacher's CE
    is for (notebook 04, exercise 2: the teacher then trades its own accuracy for targets that a
    look-ahead student follows easily). ``False`` needs ``lam > 0`` (else the teacher's loss is 0).
    Only ``feedback="meta"`` reads it, and only the sequential trainer runs that mode
    (:func:`kdlib.distill.distill.distill_batched` refuses any feedback), so no path ignores it.
    No run record holds it (``kdlib reproduce``'s ``config.json`` names the methods, not their
    configurations), so adding it changed no record of an existing run.
    """

    every_k: int = 8  # a feedback step after every k teaching steps ("meta"; ~every 1.6 epochs of a DEAP subject)
    lam: float = 1.0  # lambda: weight of the temporary student's CE (on quiz windows) in the teacher's loss
    lookahead_lr: float = 0.1  # eta: SGD step of the temporary student (look-ahead)
    teacher_lr: float = 1e-4  # Adam learning rate of the teacher (10x below the student's; 0: frozen)
    teacher_grad_clip: float | None = 1.0  # clip the teacher's gradient norm (None: no clipping)
    teacher_scope: Literal["fusion", "all"] = "fusion"  # what the feedback updates: fusion + head, or all
    teacher_ce: bool = True  # keep the teacher's own CE in its loss (False: the meta term alone; notebook 04, ex. 2)

    def __post_init__(self):
        if self.every_k < 1:
            raise ValueError(f"every_k must be >= 1, got {self.every_k}")
        if self.teacher_scope not in TEACHER_SCOPES:
            raise ValueError(f"teacher_scope must be one of {TEACHER_SCOPES}, got {self.teacher_scope!r}")
        if not (self.lam >= 0 and self.lookahead_lr > 0 and self.teacher_lr >= 0):
            raise ValueError(f"lam must be >= 0, lookahead_lr > 0 and teacher_lr >= 0 (0: a teacher that cannot "
                             f"change), got {self.lam}, {self.lookahead_lr}, {self.teacher_lr}")
        if not isinstance(self.teacher_ce, bool):
            raise ValueError(f"teacher_ce must be True or False, got {self.teacher_ce!r}")
        if not self.teacher_ce and self.lam == 0:
            raise ValueError("teacher_ce=False needs lam > 0: with neither the teacher's CE nor the meta term "
                             "the teacher's loss is 0 (to freeze the teacher set teacher_lr=0)")


@dataclass(frozen=True)
class GuidanceConfig:
    """The knobs of the metric-driven variant (``feedback="metric"``; ``DistillConfig.guidance_config``).

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``. The teacher stays fixed;
    after every epoch the student loss's ``alpha`` and ``T`` are rescaled from the gap between the
    running validation accuracies of teacher and student
    (:func:`kdlib.distill.feedback.metric_guidance`).
    """

    alpha_gain: float = 2.0  # alpha *= clip(1 + alpha_gain * gap)
    temperature_gain: float = 2.0  # T *= clip(1 + temperature_gain * gap)
    scale_range: tuple[float, float] = (0.25, 2.0)  # clip range of both factors
    momentum: float = 0.5  # running accuracy = m * running + (1 - m) * this epoch's

    def __post_init__(self):
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        lo, hi = self.scale_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= 1 <= high, got {self.scale_range}")


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
    feedback_config: FeedbackConfig = FeedbackConfig()  # "meta": k, lambda, look-ahead lr, teacher lr, ... (above)
    guidance_config: GuidanceConfig = GuidanceConfig()  # "metric": gains, clip range, momentum (above)

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {self.feature_norm!r}")
        if self.feature_loss not in FEATURE_LOSS_NAMES:
            raise ValueError(f"feature_loss must be one of {sorted(FEATURE_LOSS_NAMES)}, got {self.feature_loss!r}")
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
