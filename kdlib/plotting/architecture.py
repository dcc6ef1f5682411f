"""The teacher's architecture as a block diagram (``notebooks/02_fusion_teacher.ipynb``).

:func:`plot_teacher_architecture` draws a fusion teacher from its sizes: one row per modality
(input, tokeniser, the transformer depths), the feature-wise concatenation ``z_i`` of every depth,
the depth-gating pairs (which depth scores which), the fused sum, mean pooling and the head. It
reads the model duck-typed (a ``config`` with the sizes and ``fusion.gating.pairs``) or a plain
object / mapping of the same sizes, and imports nothing else from kdlib.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["teacher_sizes", "plot_teacher_architecture"]

_SIZE_FIELDS = ("n_eeg", "n_eog", "n_samples", "fs", "d_model", "n_heads", "n_layers", "kernel_size",
                "stride", "n_tokens", "n_classes")
_COLOURS = {"eeg": "#4C72B0", "eog": "#C44E52", "fusion": "#8172B3", "head": "#55A868"}


def teacher_sizes(teacher) -> SimpleNamespace:
    """The sizes the diagram shows, read from a teacher, its config, or a mapping of sizes.

    Parameters
    ----------
    teacher : object or mapping
        A :class:`kdlib.models.FusionTeacher` (its ``config`` and ``fusion.gating.pairs`` are read),
        a ``ModelConfig``, or anything with the attributes / keys ``n_eeg, n_eog, n_samples, fs,
        d_model, n_heads, n_layers, kernel_size, stride, n_tokens, n_classes`` and optionally
        ``pairs`` (default: the adjacent pairs ``(1, 2), (2, 3), ...``; an empty list: no gating).

    Returns
    -------
    types.SimpleNamespace
        Those fields and ``pairs`` (list of 1-based ``(scored_by, gated)`` tuples).
    """
    if isinstance(teacher, Mapping):
        teacher = SimpleNamespace(**teacher)
    config = getattr(teacher, "config", teacher)
    missing = [f for f in _SIZE_FIELDS if not hasattr(config, f)]
    if missing:
        raise ValueError(f"plot_teacher_architecture: the teacher's sizes lack {missing}")
    sizes = SimpleNamespace(**{f: getattr(config, f) for f in _SIZE_FIELDS})
    gating = getattr(getattr(teacher, "fusion", None), "gating", None)
    pairs = getattr(gating, "pairs", getattr(teacher, "pairs", None))
    if pairs is None:
        pairs = [(i, i + 1) for i in range(1, sizes.n_layers)]
    sizes.pairs = [tuple(int(k) for k in p) for p in pairs]
    return sizes


def _box(ax, x, y, text, colour, width=1.5, height=0.9):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
                                facecolor=colour, alpha=0.18, edgecolor=colour, lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, start, end, colour="#444444", rad=0.0, text=None, lw=1.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=colour, lw=lw,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
    if text:
        mid_y = (start[1] + end[1]) / 2 - rad * abs(end[0] - start[0]) / 2
        ax.text((start[0] + end[0]) / 2, mid_y, text, ha="center", va="center", fontsize=7, color=colour,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5))


def plot_teacher_architecture(teacher, ax=None):
    """Block diagram of a fusion teacher: branches, tokenisers, depths, gating pairs, fusion, head.

    Introduced in ``notebooks/02_fusion_teacher.ipynb``.

    Parameters
    ----------
    teacher : object or mapping
        What :func:`teacher_sizes` reads: a ``FusionTeacher`` (e.g. built with ``pairs=[(1, 3)]``),
        its ``ModelConfig`` (adjacent pairs) or a mapping of the sizes.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure sized to the number of depths).

    Returns
    -------
    matplotlib Axes
        One text per block; the gating arrows are labelled ``g_i: i -> j``.
    """
    s = teacher_sizes(teacher)
    n = s.n_layers
    x_depth = [4.3 + 1.9 * k for k in range(n)]  # one column per depth
    x_fused, x_head = x_depth[-1] + 2.1, x_depth[-1] + 4.0
    if ax is None:
        _, ax = plt.subplots(figsize=(0.75 * (x_head + 1.8), 0.75 * 6.2))
    rows = {"eeg": (4.0, s.n_eeg), "eog": (0.0, s.n_eog)}
    for mod, (y, channels) in rows.items():
        c = _COLOURS[mod]
        _box(ax, 0.0, y, f"{mod.upper()}\n{channels} ch × {s.n_samples}\n({s.n_samples / s.fs:g} s)", c, 1.4)
        _box(ax, 2.1, y, f"tokeniser\nconv k={s.kernel_size}, s={s.stride}\n→ {s.n_tokens} tokens × d={s.d_model}",
             c, 1.9)
        _arrow(ax, (0.7, y), (1.15, y))
        _arrow(ax, (3.05, y), (x_depth[0] - 0.75, y))
        for k, x in enumerate(x_depth, start=1):
            _box(ax, x, y, f"depth {k}\n(transformer,\n{s.n_heads} heads)", c)
            if k < n:
                _arrow(ax, (x + 0.75, y), (x_depth[k] - 0.75, y))
            _arrow(ax, (x, y - 0.45 if mod == "eeg" else y + 0.45), (x, 2.0 + (0.3 if mod == "eeg" else -0.3)),
                   colour=c, lw=0.8)
    for k, x in enumerate(x_depth, start=1):
        ax.text(x, 2.0, f"z{k} = [eeg{k};eog{k}]\n{2 * s.d_model} wide", ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor=_COLOURS["fusion"]))
    for i, j in s.pairs:  # depth i's score network gates depth j
        rad = -0.45 if j - i == 1 else -0.35
        _arrow(ax, (x_depth[i - 1] + 0.2, 2.3), (x_depth[j - 1] - 0.2, 2.3), colour=_COLOURS["fusion"], rad=rad,
               text=f"g{i}: {i}→{j}", lw=1.4)
    gated = " + ".join(f"g{i}⊙z{j}" for i, j in s.pairs) or "(no gates)"
    _box(ax, x_fused, 2.0, f"fused\nz{n} + {gated}\n(tokens × {2 * s.d_model})", _COLOURS["fusion"], 2.0, 1.1)
    _arrow(ax, (x_depth[-1] + 0.95, 2.0), (x_fused - 1.0, 2.0), colour=_COLOURS["fusion"])
    _box(ax, x_head, 2.0, f"mean pool\n→ head\n→ {s.n_classes} logits", _COLOURS["head"], 1.4)
    _arrow(ax, (x_fused + 1.0, 2.0), (x_head - 0.7, 2.0))
    ax.set(xlim=(-0.9, x_head + 0.9), ylim=(-0.7, 4.7), aspect="equal")
    ax.axis("off")
    pairs = ", ".join(f"({i}, {j})" for i, j in s.pairs) or "none"
    ax.set_title(f"fusion teacher: {n} depths per modality, gating pairs {pairs}")
    return ax
