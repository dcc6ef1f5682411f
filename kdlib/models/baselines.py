"""Single-modality baselines built from the teacher's blocks: EEG-only and EOG-only networks.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

They keep the uniform signature ``model(eeg, eog)`` but read only their own modality
(``modalities``), and **refuse** the other one: an EOG-only model given EEG raises, so that a
pipeline can never let EEG leak into a model that is meant to run without it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from .blocks import Branch, ClassifierHead, mean_pool
from .config import DEFAULT, ModelConfig

__all__ = ["SingleOutput", "SingleModalityNet", "EEGOnly", "EOGOnly"]


class SingleOutput(NamedTuple):
    """What a single-modality model returns.

    Attributes
    ----------
    logits : Tensor (B, n_classes)
    feature : Tensor (B, L, d)
        Last encoder depth (the modality's heterogeneous feature).
    pooled : Tensor (B, d)
    depths : tuple of Tensor (B, L, d)
    """

    logits: torch.Tensor
    feature: torch.Tensor
    pooled: torch.Tensor
    depths: tuple[torch.Tensor, ...]


class SingleModalityNet(nn.Module):
    """Tokeniser + encoder + mean pooling + head on one modality.

    Parameters
    ----------
    modality : {'eeg', 'eog'}
    config : ModelConfig
    """

    def __init__(self, modality: str, config: ModelConfig = DEFAULT):
        super().__init__()
        if modality not in ("eeg", "eog"):
            raise ValueError(f"modality must be 'eeg' or 'eog', got {modality!r}")
        self.modality = modality
        self.modalities = (modality,)
        self.config = config
        self.branch = Branch(config.n_eeg if modality == "eeg" else config.n_eog, config)
        self.head = ClassifierHead(config.d_model, config.n_classes, config.dropout)

    def forward(self, eeg: torch.Tensor | None = None, eog: torch.Tensor | None = None) -> SingleOutput:
        """Classify windows of the model's own modality.

        Parameters
        ----------
        eeg : Tensor (B, n_eeg, T), optional
            Required by the EEG-only model; must be None for the EOG-only one.
        eog : Tensor (B, n_eog, T), optional
            Required by the EOG-only model; must be None for the EEG-only one.

        Returns
        -------
        SingleOutput
        """
        mine, other = (eeg, eog) if self.modality == "eeg" else (eog, eeg)
        if other is not None:
            raise ValueError(f"{type(self).__name__} reads {self.modality.upper()} only; pass None for "
                             f"the other modality")
        if mine is None:
            raise ValueError(f"{type(self).__name__} needs its {self.modality.upper()} input")
        depths = self.branch(mine)  # (B, C, T) -> n_layers x (B, L, d)
        pooled = mean_pool(depths[-1])  # (B, d)
        logits = self.head(pooled)  # (B, n_classes)
        return SingleOutput(logits, depths[-1], pooled, tuple(depths))


class EEGOnly(SingleModalityNet):
    """EEG-only baseline (the teacher's EEG branch + a head)."""

    def __init__(self, config: ModelConfig = DEFAULT):
        super().__init__("eeg", config)


class EOGOnly(SingleModalityNet):
    """EOG-only baseline (the teacher's EOG branch + a head): the student branch without
    distillation."""

    def __init__(self, config: ModelConfig = DEFAULT):
        super().__init__("eog", config)
