"""Building blocks: modality tokeniser, transformer encoder, pooling, classifier head.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

Every model in :mod:`kdlib.models` (teacher, baselines and the later EOG-only student) is
assembled from these few modules, so that the student can be *structurally aligned* with the
teacher: same tokeniser, same encoder, same head. Shapes use ``B`` windows, ``C`` channels,
``T`` samples, ``L`` tokens, ``d`` token width.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Tokenizer", "SelfAttention", "Block", "Encoder", "Branch", "ClassifierHead", "mean_pool"]


class Tokenizer(nn.Module):
    """One modality's window -> a sequence of d-dimensional tokens.

    A temporal convolution shared by all channels (``kernel`` samples, ``stride``), batch norm
    and ReLU, then a spatial convolution that spans all ``n_channels`` channels and maps the
    ``n_filters`` temporal features to ``d_model``: one token per stride step.

    Parameters
    ----------
    n_channels : int
        Channels of the modality (32 EEG, 2 EOG).
    d_model : int
        Token width.
    n_filters : int
        Temporal filters.
    kernel : int
        Temporal kernel, samples (paper reading: fs/4 = 32).
    stride : int
        Temporal stride, samples (paper reading: 8).

    Notes
    -----
    ``L = (T - kernel) // stride + 1``: 512 samples -> 61 tokens.
    """

    def __init__(self, n_channels: int, d_model: int = 64, n_filters: int = 64, kernel: int = 32,
                 stride: int = 8):
        super().__init__()
        self.n_channels, self.kernel, self.stride = n_channels, kernel, stride
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel), stride=(1, stride), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.spatial = nn.Conv2d(n_filters, d_model, (n_channels, 1))

    def n_tokens(self, n_samples: int) -> int:
        """Tokens produced from a window of ``n_samples`` samples."""
        return (n_samples - self.kernel) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, n_channels, T)`` -> tokens ``(B, L, d_model)``; another channel count raises."""
        if x.ndim != 3 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected (B, {self.n_channels}, T), got {tuple(x.shape)}")
        x = x.unsqueeze(1)  # (B, 1, C, T)
        x = F.relu(self.bn(self.temporal(x)))  # (B, F, C, L)
        x = self.spatial(x)  # (B, d, 1, L)
        return x.squeeze(2).transpose(1, 2)  # (B, L, d)


class SelfAttention(nn.Module):
    """Multi-head self-attention written out (softmax(QK^T / sqrt(d_h)) V), no mask.

    Written with explicit matmuls rather than ``F.scaled_dot_product_attention`` so that the
    attention products are visible in the code and counted by
    :func:`kdlib.models.summary.count_macs` (the CPU fused kernel is invisible to the counter:
    torch 2.13 counts 0 FLOPs for ``F.scaled_dot_product_attention`` on a CPU).
    """

    def __init__(self, d_model: int, n_heads: int, attn_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.attn_drop = nn.Dropout(attn_dropout)  # on the (B, h, L, L) weights: costly on a CPU
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, L, d)`` -> attended tokens ``(B, L, d)`` (every token attends to every token)."""
        B, L, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, L, d)
        q, k, v = (t.view(B, L, h, d // h).transpose(1, 2) for t in (q, k, v))  # 3 x (B, h, L, d/h)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))  # (B, h, L, L)
        att = self.attn_drop(att.softmax(dim=-1))  # (B, h, L, L)
        y = att @ v  # (B, h, L, d/h)
        y = y.transpose(1, 2).reshape(B, L, d)  # (B, L, d)
        return self.proj_drop(self.proj(y))  # (B, L, d)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.0,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, attn_dropout, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, L, d)`` -> tokens ``(B, L, d)``."""
        x = x + self.attn(self.ln1(x))  # (B, L, d)
        return x + self.mlp(self.ln2(x))  # (B, L, d)


class Encoder(nn.Module):
    """Learned position embedding + ``n_layers`` transformer blocks; returns every depth.

    Parameters
    ----------
    n_tokens : int
        Longest sequence the position embedding covers (shorter inputs use its first rows).
    d_model, n_heads, n_layers, mlp_ratio, dropout, attn_dropout
        See :class:`kdlib.models.config.ModelConfig`.

    Returns (forward)
    -----------------
    list of Tensor
        ``n_layers`` tensors ``(B, L, d)``: the output of block 1, 2, ..., n_layers
        (depth ``i`` is ``depths[i - 1]``). The last one is the modality's "heterogeneous"
        feature; the fusion gates adjacent depths.
    """

    def __init__(self, n_tokens: int, d_model: int = 64, n_heads: int = 8, n_layers: int = 3,
                 mlp_ratio: int = 4, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, mlp_ratio, dropout, attn_dropout)
                                    for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Tokens ``(B, L, d)`` -> every block's output, ``n_layers`` x ``(B, L, d)``; ``L`` above
        ``n_tokens`` raises."""
        L = x.shape[1]
        if L > self.pos.shape[1]:
            raise ValueError(f"{L} tokens but the position embedding covers {self.pos.shape[1]}: "
                             "build the model for this window length (ModelConfig.n_samples)")
        x = self.drop(x + self.pos[:, :L])  # (B, L, d)
        depths = []
        for block in self.blocks:
            x = block(x)  # (B, L, d)
            depths.append(x)
        return depths  # n_layers x (B, L, d)


def mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    """Token sequence -> one vector per window by averaging over tokens.

    The paper does not say how sequences become a vector; kdlib uses mean pooling (no CLS token),
    so that every token (every 62.5 ms of the window) contributes equally and the teacher's and
    student's features are pooled the same way. ``(B, L, F) -> (B, F)``.
    """
    return tokens.mean(dim=1)  # (B, F)


class ClassifierHead(nn.Module):
    """Pooled feature -> logits: LayerNorm, dropout, linear. ``(B, F) -> (B, n_classes)``."""

    def __init__(self, width: int, n_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, width)`` -> logits ``(B, n_classes)``."""
        return self.fc(self.drop(self.norm(x)))  # (B, n_classes)


class Branch(nn.Module):
    """One modality's feature extractor: :class:`Tokenizer` + :class:`Encoder`.

    ``(B, C, T) -> n_layers x (B, L, d)``. The teacher has one per modality (separate weights);
    the EOG-only student reuses the EOG one's structure.

    Parameters
    ----------
    n_channels : int
    config : kdlib.models.config.ModelConfig
    """

    def __init__(self, n_channels: int, config):
        super().__init__()
        c = config
        self.tokenizer = Tokenizer(n_channels, c.d_model, c.n_filters, c.kernel_size, c.stride)
        self.encoder = Encoder(c.n_tokens, c.d_model, c.n_heads, c.n_layers, c.mlp_ratio, c.dropout,
                               c.attn_dropout)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Windows ``(B, C, T)`` -> the encoder's depths, ``n_layers`` x ``(B, L, d)``."""
        return self.encoder(self.tokenizer(x))  # (B, C, T) -> (B, L, d) -> n_layers x (B, L, d)
