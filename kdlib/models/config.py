"""Sizes of every model in :mod:`kdlib.models`, in one frozen dataclass with presets.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

The defaults are the reading of the paper this kit adopts (``/PAPER.md``, after EmotionKD):
a temporal convolution of ``fs/4`` samples with stride 8 and 64 filters, 64-d tokens,
3 transformer blocks with 8 heads. A 4 s window of 512 samples becomes
``(512 - 32) // 8 + 1 = 61`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["ModelConfig", "SMOKE", "DEFAULT", "PAPER"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the tokenisers, encoders, fusion and heads (shared by all models)."""

    n_eeg: int = 32  # EEG channels (DEAP: 32)
    n_eog: int = 2  # EOG channels (DEAP: hEOG, vEOG)
    n_samples: int = 512  # samples per window (4 s at 128 Hz); sizes the position embedding
    fs: float = 128.0  # sampling rate, Hz
    n_filters: int = 64  # temporal filters of each tokeniser
    kernel: int | None = None  # temporal kernel, samples (None: fs/4, i.e. 32 at 128 Hz)
    stride: int = 8  # temporal stride, samples: one token per 8 samples (62.5 ms at 128 Hz)
    d_model: int = 64  # token width d
    n_heads: int = 8  # attention heads (d_model must divide by it)
    n_layers: int = 3  # transformer blocks per modality = depths the fusion can gate
    mlp_ratio: int = 4  # hidden width of each block's MLP, in multiples of d_model
    gate_hidden: int = 64  # hidden width of the fusion's score network
    dropout: float = 0.1  # dropout on the residual stream, MLP and head
    attn_dropout: float = 0.0  # dropout on attention weights (0: on a CPU it costs ~20 % of a step)
    n_classes: int = 2  # logits per task (valence and arousal are separate binary tasks)

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        if self.n_samples < self.kernel_size:
            raise ValueError(f"a window of {self.n_samples} samples is shorter than the "
                             f"temporal kernel ({self.kernel_size} samples)")

    @property
    def kernel_size(self) -> int:
        """Temporal kernel in samples: ``kernel`` or ``fs/4``."""
        return int(self.kernel) if self.kernel is not None else max(1, int(round(self.fs / 4)))

    @property
    def n_tokens(self) -> int:
        """Tokens per window: ``(n_samples - kernel) // stride + 1`` (61 for 512 samples)."""
        return (self.n_samples - self.kernel_size) // self.stride + 1

    def for_windows(self, ws, **overrides) -> ModelConfig:
        """This config with channels, window length and rate taken from a WindowSet.

        Parameters
        ----------
        ws : kdlib.data.windows.WindowSet
        **overrides
            Any other field to change.

        Returns
        -------
        ModelConfig
        """
        return replace(self, n_eeg=ws.eeg.shape[1], n_eog=ws.eog.shape[1], n_samples=ws.n_samples,
                       fs=float(ws.fs), **overrides)


#: Tiny sizes for CI and quick checks: their results say nothing about the method.
SMOKE = ModelConfig(n_filters=8, d_model=16, n_heads=2, n_layers=2, gate_hidden=16, dropout=0.0)
#: The reading of the paper kdlib adopts (``/PAPER.md``): small enough to train on a laptop CPU.
PAPER = ModelConfig()
#: The same configuration by its other name (kept because callers and ``--preset`` use it): the paper
#: gives no other sizes, so the default is the paper's. Only :data:`SMOKE` differs.
DEFAULT = PAPER
