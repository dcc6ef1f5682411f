"""Distillation losses: cross-entropy, Hinton KD, fused-feature distillation, the student loss.

Introduced in ``notebooks/03_student_alignment.ipynb``.

The student's loss (the reading of the paper kdlib adopts, after EmotionKD, with Hinton's
temperature added)::

    L = CE(z_s, y)                                            # true labels
      + alpha * T^2 * KL( softmax(z_t / T) || softmax(z_s / T) )   # Hinton KD
      + beta  * D( N(A(h_s)), N(P(h_t)) )                     # fused-feature distillation

``z`` are logits, ``h_t`` the teacher's fused feature ``(B, L, 2d)``, ``h_s`` the student's
``(B, L, d)``, ``A``/``P`` the two sides of :class:`~kdlib.models.FeatureAdapter`, ``N`` a
layer norm *without parameters* over the feature axis (``feature_norm="layernorm"``, the
default; ``"none"`` skips it) and ``D`` the mean squared error (default) or the cosine distance.
The ``T^2`` factor keeps the KD gradient's size independent of ``T`` (the gradient of the
softened KL scales as ``1/T^2``).

Why ``N``: the teacher's fused features are not on any stated scale. Without it, at the DEFAULT
sizes the feature MSE was 5.7 at epoch 1 against CE 0.72 and KD 0.16, so about 88 % of variation
2's loss was feature matching and ``beta`` did not mean what it says. After ``N`` every token is
a zero-mean, unit-variance vector on both sides, and the MSE between two such vectors is
``2 (1 - r)`` with ``r`` their Pearson correlation: a number in ``[0, 4]`` (about 2 for unrelated
features), whatever the teacher's scale. :func:`loss_shares` reports each weighted term's share
of the student loss, and ``distill`` logs it per epoch.

Nothing here detaches the teacher: :func:`kdlib.distill.distill` feeds cached teacher outputs
(computed once under ``no_grad``, :mod:`kdlib.distill.targets`), while the feedback phase
(:mod:`kdlib.distill.feedback`) may differentiate through a live teacher on purpose. Nothing here
steps an optimiser either: the student's step is :func:`kdlib.train.optimizer_step`, and
:func:`kdlib.distill.distill.teaching_step` puts the two together for one batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from .config import FEATURE_NORMS, DistillConfig

if TYPE_CHECKING:  # pragma: no cover
    from kdlib.models import FeatureAdapter

__all__ = ["cross_entropy", "hinton_kd", "feature_mse", "feature_cosine", "FEATURE_LOSSES", "FEATURE_NORMS",
           "feature_loss", "student_loss", "student_loss_terms", "loss_shares"]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean (class-weighted) cross-entropy on true labels. ``(B, C), (B,) -> ()``.

    Parameters
    ----------
    logits : Tensor (B, C)
    y : Tensor (B,) int64
    weight : Tensor (C,), optional
        Class weights.

    Returns
    -------
    Tensor ()
    """
    return F.cross_entropy(logits, y, weight=weight)


def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0, *,
              vmap_safe: bool = False) -> torch.Tensor:
    """Hinton's knowledge-distillation loss, ``T^2 * KL(p_t^T || p_s^T)``, averaged over windows.

    Introduced in ``notebooks/03_student_alignment.ipynb`` (written out there from the formula).

    Parameters
    ----------
    student_logits, teacher_logits : Tensor (B, C)
    temperature : float
        ``T > 0``; both distributions are ``softmax(z / T)``. ``T = 1`` is plain KL on the
        predicted distributions (the predecessor's choice).
    vmap_safe : bool
        Write the KL out (``sum p_t (log p_t - log p_s)``) instead of ``F.kl_div``, which has no
        ``torch.func.vmap`` batching rule; the fold-batched trainer (:mod:`kdlib.batched`) uses
        it. Same value to float rounding.

    Returns
    -------
    Tensor ()
        ``T^2 / B * sum_b sum_c p_t[b, c] * (log p_t[b, c] - log p_s[b, c])``: zero when the
        logits agree, growing with disagreement.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)  # (B, C)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, C)
    if vmap_safe:
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()  # (B, C) -> ()
    else:
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)  # ()
    return temperature ** 2 * kl


def feature_mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean squared error over windows, tokens and features. ``(B, L, F), (B, L, F) -> ()``.

    Parameters
    ----------
    s, t : Tensor (B, L, F)
        Student and teacher features at one width.

    Returns
    -------
    Tensor ()
    """
    return F.mse_loss(s, t)


def feature_cosine(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance ``1 - cos(s, t)`` per token, over the feature axis.
    ``(B, L, F), (B, L, F) -> ()``; insensitive to each token's scale.

    Parameters
    ----------
    s, t : Tensor (B, L, F)
        Student and teacher features at one width.

    Returns
    -------
    Tensor ()
    """
    return (1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-6)).mean()  # (B, L) -> ()


FEATURE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": feature_mse,
    "cosine": feature_cosine,
}


def feature_loss(student_fused: torch.Tensor, teacher_fused: torch.Tensor, adapter: FeatureAdapter,
                 kind: str = "mse", norm: str = "layernorm") -> torch.Tensor:
    """Fused-feature distillation through the adapter.

    Parameters
    ----------
    student_fused : Tensor (B, L, d)
    teacher_fused : Tensor (B, L, 2d)
    adapter : kdlib.models.FeatureAdapter
        Brings both to its comparison width (see its docstring for which side changes).
    kind : {'mse', 'cosine'}
    norm : {'layernorm', 'none'}
        ``"layernorm"``: both sides are standardised per token over the feature axis (a layer
        norm without parameters) before ``kind`` compares them, so the term has a stated scale
        (MSE in ``[0, 4]``); ``"none"``: raw features.

    Returns
    -------
    Tensor ()
    """
    if kind not in FEATURE_LOSSES:
        raise ValueError(f"feature loss must be one of {sorted(FEATURE_LOSSES)}, got {kind!r}")
    if norm not in FEATURE_NORMS:
        raise ValueError(f"feature norm must be one of {FEATURE_NORMS}, got {norm!r}")
    s, t = adapter(student_fused, teacher_fused)  # 2 x (B, L, width)
    if norm == "layernorm":
        s, t = F.layer_norm(s, s.shape[-1:]), F.layer_norm(t, t.shape[-1:])  # per token: mean 0, var 1
    return FEATURE_LOSSES[kind](s, t)


def student_loss(student_out, teacher_out, y: torch.Tensor, adapter: FeatureAdapter | None,
                 config: DistillConfig, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The student's combined loss ``CE + alpha * KD_T + beta * D(features)`` and its parts.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    student_out : StudentOutput
        Needs ``.logits (B, C)`` and ``.fused (B, L, d)``.
    teacher_out : TeacherOutput or TeacherTargets, or None
        Needs ``.logits (B, C)`` and ``.fused (B, L, 2d)`` for the same windows. ``None`` is
        allowed when ``alpha == beta == 0`` (the student from scratch).
    y : Tensor (B,) int64
    adapter : FeatureAdapter or None
        Required when ``beta > 0``.
    config : DistillConfig
        ``alpha``, ``beta``, ``temperature``, ``feature_loss``.
    weight : Tensor (C,), optional
        Class weights of the cross-entropy.

    Returns
    -------
    loss : Tensor ()
    parts : dict of str -> float
        ``ce``, ``kd`` (``T^2 * KL``, before ``alpha``) and ``feat`` (before ``beta``); ``kd``
        is logged whenever a teacher is given (also at ``alpha = 0``), ``feat`` only when
        ``beta > 0`` (NaN otherwise: without training, the adapter's output means nothing).
    """
    loss, parts = student_loss_terms(student_out, teacher_out, y, adapter, config, weight)
    return loss, {k: float("nan") if v is None else float(v.detach()) for k, v in parts.items()}


def student_loss_terms(student_out, teacher_out, y: torch.Tensor, adapter: FeatureAdapter | None,
                       config: DistillConfig, weight: torch.Tensor | None = None, *,
                       vmap_safe: bool = False) -> tuple[torch.Tensor, dict]:
    """:func:`student_loss` with its parts as tensors (``None`` where unused): no ``float()``, so
    it runs under ``torch.func.vmap`` (the fold-batched trainer, :mod:`kdlib.batched`).

    Parameters
    ----------
    student_out, teacher_out, y, adapter, config, weight
        As for :func:`student_loss`.
    vmap_safe : bool
        Passed to :func:`hinton_kd`.

    Returns
    -------
    loss : Tensor ()
    parts : dict of str -> Tensor () or None
        ``ce``, ``kd``, ``feat``, undetached.
    """
    ce = cross_entropy(student_out.logits, y, weight)
    loss, parts = ce, {"ce": ce, "kd": None, "feat": None}
    if teacher_out is None:
        if config.alpha or config.beta:
            raise ValueError(f"{config.method}: alpha/beta > 0 need the teacher's outputs")
        return loss, parts
    kd = hinton_kd(student_out.logits, teacher_out.logits, config.temperature, vmap_safe=vmap_safe)
    parts["kd"] = kd
    if config.alpha:
        loss = loss + config.alpha * kd
    if config.beta:
        if adapter is None:
            raise ValueError(f"{config.method}: beta > 0 needs a FeatureAdapter")
        feat = feature_loss(student_out.fused, teacher_out.fused, adapter, config.feature_loss,
                            getattr(config, "feature_norm", "layernorm"))
        parts["feat"] = feat
        loss = loss + config.beta * feat
    return loss, parts


def loss_shares(parts: dict, alpha: float, beta: float) -> dict:
    """Each weighted term's share of the student loss: ``CE``, ``alpha * KD``, ``beta * feature``.

    Parameters
    ----------
    parts : dict
        ``ce``, ``kd``, ``feat`` as :func:`student_loss` logs them (before the weights; NaN
        where unused), e.g. averaged over an epoch.
    alpha, beta : float
        The weights in use.

    Returns
    -------
    dict
        ``share_ce``, ``share_kd``, ``share_feat``: fractions summing to 1 (a term not in the
        loss has share 0).
    """
    def term(weight, value):
        return weight * value if weight and value is not None and math.isfinite(value) else 0.0
    weighted = {"ce": parts.get("ce", 0.0), "kd": term(alpha, parts.get("kd")), "feat": term(beta, parts.get("feat"))}
    total = sum(weighted.values())
    return {f"share_{k}": (v / total if total > 0 else math.nan) for k, v in weighted.items()}
