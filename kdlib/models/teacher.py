"""The multimodal teacher (EEG + EOG -> fusion -> head) and the late-fusion baseline teacher.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

All models in kdlib share one calling convention: ``model(eeg, eog)`` with ``eeg (B, n_eeg, T)``
and ``eog (B, n_eog, T)``, returning a NamedTuple with ``.logits (B, n_classes)``. The class
attribute ``modalities`` says which inputs a model reads; :mod:`kdlib.train` passes ``None`` for
the others. One model per task: valence and arousal are separate binary problems.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn as nn

from .blocks import Branch, ClassifierHead, mean_pool
from .config import DEFAULT, ModelConfig
from .fusion import ModalFusion

__all__ = ["TeacherOutput", "BranchOutputs", "FusionTeacher", "LateFusionTeacher"]


class TeacherOutput(NamedTuple):
    """What a teacher returns: everything distillation needs.

    Attributes
    ----------
    logits : Tensor (B, n_classes)
    fused : Tensor (B, L, 2d)
        The fused token sequence (feature-axis concatenation of EEG and EOG).
    pooled : Tensor (B, 2d)
        ``fused`` mean-pooled over tokens: what the head reads.
    eeg_depths, eog_depths : tuple of Tensor (B, L, d)
        Every encoder depth of each modality; the last ones are the heterogeneous features.
    gates : tuple of Tensor (B, L, 2d)
        The fusion's gates, one per depth pair (empty for :class:`LateFusionTeacher`).
    """

    logits: torch.Tensor
    fused: torch.Tensor
    pooled: torch.Tensor
    eeg_depths: tuple[torch.Tensor, ...]
    eog_depths: tuple[torch.Tensor, ...]
    gates: tuple[torch.Tensor, ...]


class BranchOutputs(NamedTuple):
    """What a teacher's two modality branches hand on to the rest of it (fusion and head).

    ``teacher(eeg, eog) == teacher.fuse(teacher.branches(eeg, eog))``: the variation-3 feedback
    (:mod:`kdlib.distill.feedback`) caches these once per fold when only the fusion and the head
    learn.

    Attributes
    ----------
    eeg_depths, eog_depths : tuple of Tensor (B, L, d)
        Every encoder depth of each modality.
    """

    eeg_depths: tuple[torch.Tensor, ...]
    eog_depths: tuple[torch.Tensor, ...]

    def take(self, index: torch.Tensor) -> BranchOutputs:
        """The rows of a mini-batch: ``(B,)`` indices -> every depth ``(B, L, d)``."""
        index = index.to(self.eeg_depths[0].device)
        return BranchOutputs(tuple(d[index] for d in self.eeg_depths), tuple(d[index] for d in self.eog_depths))


class _TwoBranchTeacher(nn.Module):
    """What both teachers share: an EEG and an EOG :class:`~kdlib.models.blocks.Branch`, and
    ``forward = fuse(branches(eeg, eog))``. Subclasses add what comes after the branches
    (created after them, so seeded initial weights follow the same order) and define ``fuse``.
    """

    modalities = ("eeg", "eog")

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.eeg = Branch(config.n_eeg, config)
        self.eog = Branch(config.n_eog, config)

    def forward(self, eeg: torch.Tensor, eog: torch.Tensor) -> TeacherOutput:
        return self.fuse(self.branches(eeg, eog))

    def branches(self, eeg: torch.Tensor, eog: torch.Tensor) -> BranchOutputs:
        """The two modality branches: ``(B, n_eeg, T), (B, n_eog, T) -> n_layers x (B, L, d)`` each."""
        return BranchOutputs(tuple(self.eeg(eeg)), tuple(self.eog(eog)))


class FusionTeacher(_TwoBranchTeacher):
    """EEG branch + EOG branch + :class:`~kdlib.models.fusion.ModalFusion` + classifier head.

    Parameters
    ----------
    config : ModelConfig
        Sizes; ``ModelConfig().for_windows(ws)`` takes channels and window length from data.
    pairs : sequence of (int, int), optional
        The fusion's 1-based ``(scored_by, gated)`` depth pairs, handed to its
        :class:`~kdlib.models.fusion.DepthGating`; default (``None``) the adjacent pairs
        ``(1, 2), (2, 3), ...`` of ``config.n_layers`` depths. ``pairs=[(1, 3)]`` lets depth 1
        gate depth 3 alone (notebook 02's exercise 3). The default builds the same parameters
        in the same order as before the option existed, so seeded teachers are unchanged.

    Notes
    -----
    Concatenation is along the feature axis and pooling is the mean over tokens; see
    :mod:`kdlib.models.fusion` and :func:`kdlib.models.blocks.mean_pool` for why.
    ``forward`` is ``fuse(branches(eeg, eog))``: the two halves are methods of their own so that
    variation 3 can cache the branches' outputs (:class:`BranchOutputs`).

    :class:`~kdlib.models.EOGStudent` keeps its own adjacent pairs whatever the teacher's are:
    distillation aligns the fused features (``(B, L, 2d)`` against the student's ``(B, L, d)``
    through :class:`~kdlib.models.FeatureAdapter`) and the logits, never gate with gate, so the
    two gatings need not match. ``pairs`` is a constructor option, not a ``ModelConfig`` field:
    :func:`~kdlib.models.build_model` and the protocol runners build the default teacher.
    """

    def __init__(self, config: ModelConfig = DEFAULT, pairs: Sequence[tuple[int, int]] | None = None):
        super().__init__(config)
        self.fusion = ModalFusion(config.d_model, config.n_layers, config.gate_hidden, pairs)
        self.head = ClassifierHead(2 * config.d_model, config.n_classes, config.dropout)

    def fuse(self, b: BranchOutputs) -> TeacherOutput:
        """Everything after the branches: fusion, mean pooling, head."""
        f = self.fusion(b.eeg_depths, b.eog_depths)  # fused (B, L, 2d), gates n_pairs x (B, L, 2d)
        pooled = mean_pool(f.fused)  # (B, 2d)
        logits = self.head(pooled)  # (B, n_classes)
        return TeacherOutput(logits, f.fused, pooled, b.eeg_depths, b.eog_depths, f.gates)

    def gate_maps(self, out: TeacherOutput) -> dict:
        """The gates of a forward pass's output, ``{"1-2": (B, L, 2d) array, ...}`` (for plotting).

        Parameters
        ----------
        out : TeacherOutput
            What ``teacher(eeg, eog)`` returned.

        Returns
        -------
        dict of str -> ndarray (B, L, 2d)
            Features ``0..d-1`` belong to the EEG half, ``d..2d-1`` to the EOG half.
        """
        return self.fusion.gating.gate_maps(out.gates)


class LateFusionTeacher(_TwoBranchTeacher):
    """Baseline teacher without interaction: both branches, last depths concatenated, pooled.

    Mean-pooling each modality and concatenating the two vectors equals mean-pooling the
    feature-wise concatenated tokens, which is what is computed (so ``fused`` has the same
    ``(B, L, 2d)`` shape as :class:`FusionTeacher`'s and the two are interchangeable for
    distillation).
    """

    def __init__(self, config: ModelConfig = DEFAULT):
        super().__init__(config)
        self.head = ClassifierHead(2 * config.d_model, config.n_classes, config.dropout)

    def fuse(self, b: BranchOutputs) -> TeacherOutput:
        """Everything after the branches: last depths concatenated, mean pooling, head."""
        fused = torch.cat([b.eeg_depths[-1], b.eog_depths[-1]], dim=-1)  # (B, L, 2d)
        pooled = mean_pool(fused)  # (B, 2d) = [mean eeg ; mean eog]
        logits = self.head(pooled)  # (B, n_classes)
        return TeacherOutput(logits, fused, pooled, b.eeg_depths, b.eog_depths, ())
