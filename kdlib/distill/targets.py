"""What the student is taught from: the teacher's outputs, cached once per fold or per batch.

Introduced in ``notebooks/03_student_alignment.ipynb`` (the frozen teacher's targets) and
``notebooks/04_dynamic_feedback_distillation.ipynb`` (the cached branch outputs of variation 3).

* :func:`teacher_targets`: the frozen teacher (eval mode, no gradient) over a WindowSet once:
  logits and fused features of every window, looked up per batch by ``Batch.index``;
* :func:`branch_outputs`: the teacher's two modality branches over every window once, for
  variation 3 when only the teacher's fusion and head learn;
* :func:`teacher_outputs` / :func:`teacher_forward`: the teacher on one batch, without or with
  gradient, in full or from its cached branch outputs.

Every loop over many windows here is :func:`kdlib.train.infer` (eval mode, no gradient, batched).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn as nn

from kdlib.data.windows import WindowSet
from kdlib.models import BranchOutputs
from kdlib.train import call_model, infer, to_tensors

__all__ = ["TeacherTargets", "frozen", "teacher_targets", "branch_outputs", "teacher_forward", "teacher_outputs"]


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


def _logits_and_fused(out) -> tuple[torch.Tensor, torch.Tensor]:
    return out.logits.float(), out.fused.float()  # (b, C), (b, L, F)


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
    with frozen(teacher):
        logits, fused = infer(teacher, data, batch_size, keep=_logits_and_fused)  # (N, C), (N, L, 2d)
    device = tdev if device is None else device
    return TeacherTargets(logits.to(device), fused.to(device))


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
    return infer(teacher, {"eeg": eeg, "eog": eog}, batch_size, call=lambda t, x: t.branches(x["eeg"], x["eog"]),
                 keep=lambda b: b)  # n_layers x (N, L, d) per modality


def teacher_forward(teacher: nn.Module, eeg: torch.Tensor | None, eog: torch.Tensor | None,
                    branches: BranchOutputs | None = None):
    """The teacher on a batch, in its current mode and with gradient: in full, or only after its
    branches when their outputs are given.

    Parameters
    ----------
    teacher : nn.Module
    eeg : Tensor (B, n_eeg, T) or None
    eog : Tensor (B, n_eog, T) or None
    branches : BranchOutputs, optional
        The teacher's branch outputs for this batch: then only ``teacher.fuse`` runs.

    Returns
    -------
    TeacherOutput
    """
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
    return teacher_forward(teacher, eeg, eog, branches)
