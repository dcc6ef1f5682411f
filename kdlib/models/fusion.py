"""Modal fusion ("interactivity"): score-gated sums of adjacent encoder depths.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

The reading of the paper kdlib adopts (after EmotionKD). At every depth ``i`` the EEG and EOG
tokens are concatenated; a small score network reads depth ``i`` and produces an element-wise
gate in (-1, 1) for depth ``i + 1``; the gated depths of the adjacent pairs (1, 2) and (2, 3)
are summed into the *interactive* feature. The last depth of each modality's encoder is its
*heterogeneous* feature; the fused feature is their sum::

    z_i    = [eeg_i ; eog_i]                          # (B, L, 2d), concatenated along features
    g_i    = softsign(BN(W2 relu(BN(W1 z_i))))        # (B, L, 2d), the gate of pair (i, i+1)
    fused  = z_N + sum_i g_i * z_{i+1}                # (B, L, 2d)

Where the paper is silent, kdlib chooses:

* **Concatenation along the feature axis**, not the token axis. Both tokenisers use the same
  kernel and stride, so EEG token ``t`` and EOG token ``t`` cover the same 62.5 ms: joining them
  feature-wise keeps time aligned, and the score network's first linear layer then mixes the two
  modalities at every time step (along the token axis it could not: a token-wise linear layer
  never sees the other modality). The fused feature is therefore ``2d`` wide.
* **The shallower depth scores the deeper one** (``g_i`` is computed from ``z_i`` and multiplies
  ``z_{i+1}``): the earlier representation decides which features of the next one pass.
* **The heterogeneous features enter the fused feature as a residual** (``z_N +``), so that the
  gates modulate an interaction on top of what each encoder extracts on its own.

:class:`DepthGating` works on any list of depths of one width, so the later EOG-only student
applies the very same gating across its own depths (width ``d``); :class:`ModalFusion` is
concatenation + :class:`DepthGating` (width ``2d``).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TokenBatchNorm", "ScoreNet", "DepthGating", "GatingOutput", "ModalFusion", "FusionOutput",
           "adjacent_pairs", "gate_maps"]


class TokenBatchNorm(nn.BatchNorm1d):
    """Batch norm over features of a token sequence: statistics over windows and tokens.
    ``(B, L, F) -> (B, L, F)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, L, F)


class ScoreNet(nn.Module):
    """The gate's score network: linear -> BN -> ReLU -> linear -> BN -> softsign.

    ``(B, L, F) -> (B, L, F)`` with values in (-1, 1), applied token by token.
    """

    def __init__(self, width: int, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.bn1 = TokenBatchNorm(hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.bn2 = TokenBatchNorm(width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc1(z)))  # (B, L, hidden)
        return F.softsign(self.bn2(self.fc2(h)))  # (B, L, F), in (-1, 1)


def adjacent_pairs(n_depths: int) -> list[tuple[int, int]]:
    """``[(1, 2), (2, 3), ...]``: the adjacent depth pairs of an encoder (1-based)."""
    return [(i, i + 1) for i in range(1, n_depths)]


def gate_maps(gates: Sequence[torch.Tensor], pairs: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """The gates of a forward pass as arrays for plotting, named by their depth pair.

    Parameters
    ----------
    gates : sequence of Tensor (B, L, F)
        ``output.gates`` of :class:`DepthGating`, :class:`ModalFusion`, a teacher or a student.
    pairs : sequence of (int, int)
        The gating's ``pairs`` (``DepthGating.pairs``), in the same order.

    Returns
    -------
    dict of str -> ndarray (B, L, F)
        ``{"1-2": ..., "2-3": ...}``, ready for ``plt.imshow(maps["1-2"].mean(0).T)``.
    """
    return {f"{i}-{j}": g.detach().float().cpu().numpy() for (i, j), g in zip(pairs, gates)}


class GatingOutput(NamedTuple):
    """What :class:`DepthGating` returns.

    Attributes
    ----------
    fused : Tensor (B, L, F)
        ``depths[-1] + interactive``.
    interactive : Tensor (B, L, F)
        Sum over pairs ``(i, j)`` of ``gate_ij * depth_j``.
    gates : tuple of Tensor (B, L, F)
        One gate per pair, in the order of ``DepthGating.pairs``.
    """

    fused: torch.Tensor
    interactive: torch.Tensor
    gates: tuple[torch.Tensor, ...]


class DepthGating(nn.Module):
    """Score-gated sum over pairs of depths of one token width (reusable: teacher and student).

    Parameters
    ----------
    width : int
        Feature width ``F`` of every depth (``2d`` for concatenated EEG+EOG, ``d`` for one
        modality).
    n_depths : int
        Depths the encoder returns.
    hidden : int
        Hidden width of each :class:`ScoreNet`.
    pairs : sequence of (int, int), optional
        1-based ``(scored_by, gated)`` pairs; default :func:`adjacent_pairs` (``(1,2), (2,3)``).

    Notes
    -----
    The gates are part of the output (``GatingOutput.gates``); :meth:`gate_maps` turns them into
    named arrays for plotting. Nothing is kept on the module between calls, so a forward pass
    traces and exports as it runs.
    """

    def __init__(self, width: int, n_depths: int, hidden: int = 64,
                 pairs: Sequence[tuple[int, int]] | None = None):
        super().__init__()
        self.pairs = [tuple(p) for p in (adjacent_pairs(n_depths) if pairs is None else pairs)]
        for i, j in self.pairs:
            if not (1 <= i <= n_depths and 1 <= j <= n_depths):
                raise ValueError(f"pair {(i, j)} outside depths 1..{n_depths}")
        self.width, self.n_depths = width, n_depths
        self.scores = nn.ModuleList(ScoreNet(width, hidden) for _ in self.pairs)

    def forward(self, depths: Sequence[torch.Tensor]) -> GatingOutput:
        if len(depths) != self.n_depths:
            raise ValueError(f"expected {self.n_depths} depths, got {len(depths)}")
        interactive = torch.zeros_like(depths[-1])  # (B, L, F)
        gates = []
        for (i, j), score in zip(self.pairs, self.scores):
            g = score(depths[i - 1])  # (B, L, F), scored from depth i
            interactive = interactive + g * depths[j - 1]  # (B, L, F), gates depth j
            gates.append(g)
        return GatingOutput(depths[-1] + interactive, interactive, tuple(gates))  # (B, L, F) ...

    def gate_maps(self, gates: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        """``output.gates`` of a forward pass as ``{"1-2": (B, L, F) array, ...}`` (:func:`gate_maps`)."""
        return gate_maps(gates, self.pairs)



class FusionOutput(NamedTuple):
    """What :class:`ModalFusion` returns.

    Attributes
    ----------
    fused : Tensor (B, L, 2d)
        ``heterogeneous + interactive``: the feature the head reads and distillation aligns.
    interactive : Tensor (B, L, 2d)
    heterogeneous : Tensor (B, L, 2d)
        ``[eeg_N ; eog_N]``: the last depth of both encoders, concatenated along features.
    gates : tuple of Tensor (B, L, 2d)
    """

    fused: torch.Tensor
    interactive: torch.Tensor
    heterogeneous: torch.Tensor
    gates: tuple[torch.Tensor, ...]


class ModalFusion(nn.Module):
    """EEG + EOG fusion: concatenate per depth along features, then :class:`DepthGating`.

    Parameters
    ----------
    d_model : int
        Token width of each modality (the fused width is ``2 * d_model``).
    n_depths : int
    hidden : int
    pairs : sequence of (int, int), optional
    """

    def __init__(self, d_model: int, n_depths: int, hidden: int = 64,
                 pairs: Sequence[tuple[int, int]] | None = None):
        super().__init__()
        self.gating = DepthGating(2 * d_model, n_depths, hidden, pairs)

    def forward(self, eeg_depths: Sequence[torch.Tensor], eog_depths: Sequence[torch.Tensor]) -> FusionOutput:
        """Concatenate the depths of both modalities along features, then gate them.

        Parameters
        ----------
        eeg_depths, eog_depths : sequence of Tensor (B, L, d)
            Every encoder depth of each modality (time-aligned tokens).

        Returns
        -------
        FusionOutput
        """
        if eeg_depths[0].shape[:2] != eog_depths[0].shape[:2]:
            raise ValueError(f"EEG tokens {tuple(eeg_depths[0].shape)} and EOG tokens "
                             f"{tuple(eog_depths[0].shape)} are not time-aligned")
        joint = [torch.cat([e, o], dim=-1) for e, o in zip(eeg_depths, eog_depths)]  # N x (B, L, 2d)
        g = self.gating(joint)  # fused, interactive: (B, L, 2d)
        return FusionOutput(g.fused, g.interactive, joint[-1], g.gates)

    def gate_maps(self, out: FusionOutput) -> dict[str, np.ndarray]:
        """``out.gates`` as ``{"1-2": (B, L, 2d) array, ...}`` (:func:`gate_maps`); features
        ``0..d-1`` belong to the EEG half, ``d..2d-1`` to the EOG half.

        Parameters
        ----------
        out : FusionOutput
            What this module's forward pass returned.

        Returns
        -------
        dict of str -> ndarray (B, L, 2d)
        """
        return self.gating.gate_maps(out.gates)
