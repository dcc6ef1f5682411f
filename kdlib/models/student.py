"""The EOG-only student, structurally aligned with the teacher, and the feature adapter.

Introduced in ``notebooks/03_student_alignment.ipynb``.

The student is the teacher with its EEG half removed, block for block::

    teacher:  EEG branch ─┐
                          ├─ concat per depth ─ DepthGating(2d) ─ mean pool ─ head(2d)
              EOG branch ─┘
    student:  EOG branch ──────────────────── DepthGating(d)  ─ mean pool ─ head(d)

Same :class:`~kdlib.models.blocks.Branch` (tokeniser + encoder) as the teacher's EOG branch,
the same :class:`~kdlib.models.fusion.DepthGating` applied across the student's *own* adjacent
depths (its counterpart of the fusion module), the same kind of classifier head. Because the EOG
branch has the teacher's structure and parameter names, the teacher's trained EOG branch can be
copied into it (:meth:`EOGStudent.init_from_teacher`, an ablation switch).

Feature sizes differ: the teacher's fused feature is ``(B, L, 2d)`` (EEG and EOG tokens
concatenated along features), the student's is ``(B, L, d)``. :class:`FeatureAdapter` makes them
comparable, in one of two explicit ways (see its docstring for which side changes and why):

* ``"linear"`` (kdlib's default): a learned token-wise linear map ``d -> 2d`` on the **student**
  side, trained with the student; the teacher's fused feature is the target, untouched.
* ``"pool"``: no parameters; the **teacher** side is average-pooled over adjacent feature pairs,
  ``2d -> d``, and compared with the student's feature as it is.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from .blocks import Branch, ClassifierHead, mean_pool
from .config import DEFAULT, ModelConfig
from .fusion import DepthGating

__all__ = ["StudentOutput", "EOGStudent", "FeatureAdapter", "ADAPTERS"]

ADAPTERS = ("linear", "pool")


class StudentOutput(NamedTuple):
    """What :class:`EOGStudent` returns.

    Attributes
    ----------
    logits : Tensor (B, n_classes)
    fused : Tensor (B, L, d)
        The student's gated feature (last depth + gated adjacent depths): its counterpart of
        the teacher's fused feature, and what feature distillation aligns.
    pooled : Tensor (B, d)
        ``fused`` mean-pooled over tokens: what the head reads.
    depths : tuple of Tensor (B, L, d)
        Every encoder depth.
    gates : tuple of Tensor (B, L, d)
        One gate per adjacent depth pair.
    """

    logits: torch.Tensor
    fused: torch.Tensor
    pooled: torch.Tensor
    depths: tuple[torch.Tensor, ...]
    gates: tuple[torch.Tensor, ...]


class EOGStudent(nn.Module):
    """EOG branch + gating across its own depths + classifier head; reads EOG only.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    config : ModelConfig
        The teacher's config (the student uses ``n_eog`` and the shared sizes; ``n_eeg`` is
        ignored).

    Notes
    -----
    Called like every kdlib model, ``student(eeg=None, eog=eog)``; any EEG input raises
    ``ValueError`` (there is no EEG tokeniser to feed: the student owns no EEG-sized weight).
    The module names ``eog`` (branch) and ``head`` match :class:`~kdlib.models.FusionTeacher`'s,
    so ``student.eog.load_state_dict(teacher.eog.state_dict())`` works.

    The student always gates its own adjacent depth pairs, even when the teacher was built with
    other ``pairs`` (:class:`~kdlib.models.FusionTeacher`): distillation aligns fused features
    and logits, not gates, so it needs no ``pairs`` option to stay aligned with such a teacher.
    """

    modalities = ("eog",)

    def __init__(self, config: ModelConfig = DEFAULT):
        super().__init__()
        self.config = config
        self.eog = Branch(config.n_eog, config)
        self.gating = DepthGating(config.d_model, config.n_layers, config.gate_hidden)
        self.head = ClassifierHead(config.d_model, config.n_classes, config.dropout)

    def forward(self, eeg: None = None, eog: torch.Tensor | None = None) -> StudentOutput:
        """EOG branch, gating over its depths, mean pooling, head.

        Parameters
        ----------
        eeg : None
            Must be ``None``: the student reads EOG only.
        eog : Tensor (B, n_eog, T)

        Returns
        -------
        StudentOutput
            ``logits (B, C)``, ``fused (B, L, d)``, ``pooled (B, d)``, the depths and the gates.
        """
        if eeg is not None:
            raise ValueError("EOGStudent reads EOG only: call it as student(eog=eog) (eeg must be None)")
        if eog is None:
            raise ValueError("EOGStudent needs its EOG input: student(eog=eog)")
        depths = self.eog(eog)  # (B, n_eog, T) -> n_layers x (B, L, d)
        g = self.gating(depths)  # fused (B, L, d), gates n_pairs x (B, L, d)
        pooled = mean_pool(g.fused)  # (B, d)
        logits = self.head(pooled)  # (B, n_classes)
        return StudentOutput(logits, g.fused, pooled, tuple(depths), g.gates)

    def init_from_teacher(self, teacher: nn.Module) -> EOGStudent:
        """Copy the teacher's EOG branch (tokeniser + encoder) into this student, in place.

        The gating and the head keep their own initialisation (the teacher's are ``2d`` wide).

        Parameters
        ----------
        teacher : FusionTeacher or LateFusionTeacher
            Built with the same config (window length, sizes).

        Returns
        -------
        EOGStudent
            ``self``, for chaining.
        """
        self.eog.load_state_dict(teacher.eog.state_dict())
        return self

    def gate_maps(self, out: StudentOutput) -> dict:
        """The gates of a forward pass's output, ``{"1-2": (B, L, d) array, ...}`` (for plotting).

        Parameters
        ----------
        out : StudentOutput
            What ``student(eog=eog)`` returned.

        Returns
        -------
        dict of str -> ndarray (B, L, d)
        """
        return self.gating.gate_maps(out.gates)


class FeatureAdapter(nn.Module):
    """Makes the student's ``(B, L, d)`` feature comparable with the teacher's ``(B, L, 2d)``.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    d_student : int
        Student token width ``d``.
    d_teacher : int
        Teacher fused width ``2d``.
    kind : {'linear', 'pool'}
        ``"linear"`` (default): a learned token-wise ``nn.Linear(d, 2d)`` maps the **student**
        feature up to the teacher's width; the teacher's fused feature is compared as it is.
        ``"pool"``: no parameters; the **teacher** feature is reduced to ``d`` by averaging
        adjacent feature pairs (features ``2k`` and ``2k+1``: the first ``d/2`` outputs summarise
        the EEG half, the last ``d/2`` the EOG half), the student feature is compared as it is.

    Notes
    -----
    Why kdlib defaults to changing the *student* side with a learned map:

    * the teacher's fused feature is the thing to distil; projecting the student up keeps all
      ``2d`` of its features as the target, nothing is averaged away;
    * a *learned* map on the *teacher* side could shrink the target towards a constant and make
      the feature loss small without the student learning anything (a collapse); on the student
      side the target is fixed, so the only way to lower the loss is a student feature from
      which a linear map recovers the fused feature;
    * the map is linear, so what the student must carry is linearly present in its own
      ``d``-wide feature (the same notion of similarity that linear CKA measures).

    The adapter belongs to the student's training graph (it is trained with the student's
    optimiser) and is thrown away after training: the deployed student never uses it.
    Pooling is the parameter-free alternative (``DistillConfig(adapter="pool")``).
    """

    def __init__(self, d_student: int, d_teacher: int, kind: str = "linear"):
        super().__init__()
        if kind not in ADAPTERS:
            raise ValueError(f"adapter kind must be one of {ADAPTERS}, got {kind!r}")
        if kind == "pool" and d_teacher != 2 * d_student:
            raise ValueError(f"pooling needs d_teacher = 2 * d_student, got {d_teacher} and {d_student}")
        self.kind, self.d_student, self.d_teacher = kind, d_student, d_teacher
        self.proj = nn.Linear(d_student, d_teacher) if kind == "linear" else None

    @property
    def width(self) -> int:
        """Feature width at which the two sides are compared (``2d`` linear, ``d`` pool)."""
        return self.d_teacher if self.kind == "linear" else self.d_student

    def student_side(self, s: torch.Tensor) -> torch.Tensor:
        """``(..., d) -> (..., width)``: learned projection (linear) or identity (pool)."""
        return self.proj(s) if self.proj is not None else s

    def teacher_side(self, t: torch.Tensor) -> torch.Tensor:
        """``(..., 2d) -> (..., width)``: identity (linear) or adjacent-pair average (pool)."""
        if self.proj is not None:
            return t
        return t.unflatten(-1, (self.d_student, 2)).mean(-1)  # (..., d, 2) -> (..., d)

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides at the comparison width: ``(B, L, d), (B, L, 2d) -> 2 x (B, L, width)``.

        Parameters
        ----------
        s : Tensor (B, L, d)
            The student's fused feature.
        t : Tensor (B, L, 2d)
            The teacher's fused feature.

        Returns
        -------
        (Tensor (B, L, width), Tensor (B, L, width))
        """
        return self.student_side(s), self.teacher_side(t)
