"""Drawings of notebook 04 (dynamic-feedback distillation): the two phases, the toy boundaries.

Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

- :func:`draw_feedback_phases`: the teaching and feedback phases as two box-and-arrow panels.
- :func:`plot_toy_boundaries`: a 2-D toy teacher's probability map with its decision boundary,
  where it started, and the linear student it taught, one panel per (teacher, student) pair.

A leaf like the rest of :mod:`kdlib.plotting`: the models are passed as plain callables on numpy
points, so nothing here imports torch or another room of kdlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["draw_feedback_phases", "plot_toy_boundaries", "TOY_EXTENT"]

TOY_EXTENT = (-1.8, 2.8, -1.5, 2.0)  # x_min, x_max, y_min, y_max of the half-moons toy problem
_TEACHER, _STUDENT, _LOSS = "#f4c7a1", "#a9cce3", "#fdebd0"  # box colours: teacher, student, losses
_META = "#a04000"  # the meta-gradient's arrow


def _box(ax, xy, text: str, colour: str, w: float = 2.3, h: float = 0.9) -> None:
    """A rounded box of width ``w`` and height ``h`` centred on ``xy`` with ``text`` inside."""
    ax.add_patch(FancyBboxPatch((xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.05",
                                fc=colour, ec="0.25", lw=1.2))
    ax.text(*xy, text, ha="center", va="center", fontsize=9)


def _arrow(ax, a, b, text: str = "", colour: str = "0.2", rad: float = 0.0, dy: float = 0.18) -> None:
    """An arrow from ``a`` to ``b`` (bent by ``rad``), labelled ``text`` above its middle (``dy``)."""
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color=colour, lw=1.4,
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center", va="bottom", fontsize=8, color=colour)


def _teaching_panel(ax) -> None:
    """Every step: the fixed teacher's fused logits and the EOG-only student meet in the student loss."""
    _box(ax, (1.6, 4.6), "batch x\n(EEG + EOG)", "#e8e8e8")
    _box(ax, (5.0, 4.6), "teacher φ\n(fixed, eval)", _TEACHER)
    _box(ax, (5.0, 1.4), "student θ\n(EOG only)", _STUDENT)
    _box(ax, (8.4, 3.0), "L = CE + α·KD\n+ β·feature", _LOSS, w=2.2)
    _arrow(ax, (2.8, 4.6), (3.8, 4.6))
    _arrow(ax, (1.6, 4.1), (3.8, 1.6), "EOG only", rad=0.15)
    _arrow(ax, (6.2, 4.5), (7.4, 3.4))
    ax.text(7.0, 4.3, "logits, fused\n(no gradient)", fontsize=8, color="0.2")
    _arrow(ax, (6.2, 1.5), (7.4, 2.6))
    _arrow(ax, (8.4, 2.5), (6.2, 1.1), "∇θ: AdamW step", colour="#1f618d", rad=-0.3, dy=-0.5)


def _feedback_panel(ax) -> None:
    """Every k steps: the look-ahead student's CE on a quiz batch reaches φ through θ'."""
    _box(ax, (1.5, 4.6), "teacher φ: fusion\n+ head (with grad)", _TEACHER)
    _box(ax, (5.0, 4.6), "temporary student\nθ' = θ − η∇θL(θ; φ)", "#d6eaf8", w=2.8)
    _box(ax, (8.5, 4.6), "CE of θ' on a quiz\nbatch x_f", _LOSS, w=2.4)
    _box(ax, (1.5, 1.4), "teacher's own\nCE on x", _LOSS)
    _box(ax, (5.0, 1.4), "L_teacher = CE_t\n+ λ·CE(θ'; x_f)", "#f9e79f", w=2.6)
    _arrow(ax, (2.7, 4.6), (3.6, 4.6), "targets")
    _arrow(ax, (6.4, 4.6), (7.3, 4.6))
    _arrow(ax, (1.5, 4.1), (1.5, 1.9))
    _arrow(ax, (8.5, 4.1), (6.3, 1.8), "× λ")
    _arrow(ax, (2.7, 1.4), (3.7, 1.4))
    _arrow(ax, (4.4, 1.9), (2.3, 4.1), colour=_META, rad=0.25)
    ax.text(3.6, 3.1, "meta-gradient\n∇φ: Adam step", fontsize=8, color=_META)


def draw_feedback_phases(axes=None):
    """Variation 3's two phases as box-and-arrow diagrams: teaching (left) and feedback (right).

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb`` (section 1). Teacher boxes
    are orange, student boxes blue, losses cream; the meta-gradient's arrow is brown.

    Parameters
    ----------
    axes : sequence of 2 matplotlib Axes, optional
        Drawn into (their limits are set to 10 x 6 and their frames turned off); a new
        12 x 4.2 inch figure by default.

    Returns
    -------
    ndarray of 2 Axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes = np.asarray(axes).ravel()
    titles = ("teaching phase (every step): the student learns", "feedback phase (every k steps): the teacher learns")
    for ax, title, draw in zip(axes, titles, (_teaching_panel, _feedback_panel)):
        ax.set(xlim=(0, 10), ylim=(0, 6), title=title)
        ax.axis("off")
        draw(ax)
    return axes


def _grid(extent: Sequence[float], n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid over ``extent``: ``xx, yy`` of shape (0.8 n, n) and their points (0.8 n * n, 2)."""
    x0, x1, y0, y1 = extent
    xx, yy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, int(0.8 * n)))
    return xx, yy, np.c_[xx.ravel(), yy.ravel()]  # (H, W), (H, W), (H * W, 2)


def _toy_legend(ax, with_before: bool) -> None:
    ax.plot([], [], color="black", label="teacher's boundary (p = 0.5)")  # a name: seaborn remaps "k"
    if with_before:
        ax.plot([], [], ":", color="0.35", label="teacher before feedback")
    ax.plot([], [], "--", color="#117a65", label="linear student it taught")
    ax.legend(loc="lower left", fontsize=8, frameon=True)


def plot_toy_boundaries(panels, points: np.ndarray, labels: np.ndarray, before: Callable | None = None,
                        extent: Sequence[float] = TOY_EXTENT, axes=None):
    """A toy teacher's probability map and boundary, with the boundary of the student it taught.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb`` (section 2 and exercise 2).
    Colour: the teacher's probability of class 1 (its soft targets); solid black line: the
    teacher's boundary ``p = 0.5``; dotted grey: ``before``'s boundary (where the teacher started);
    dashed green: the student's boundary; dots: the data, coloured by class.

    Parameters
    ----------
    panels : sequence of (str, callable, callable)
        One panel each: a title, the teacher and the student as functions of points
        ``(n, 2) -> (n,)``, the probability of class 1 (numpy in, numpy out).
    points : ndarray (N, 2)
        The toy data.
    labels : ndarray (N,)
        Their classes (0 or 1).
    before : callable, optional
        The teacher before feedback, the same kind of function: its boundary is drawn dotted.
    extent : (x_min, x_max, y_min, y_max)
        The plotted region.
    axes : sequence of Axes, optional
        One per panel (a new figure with shared y axis by default).

    Returns
    -------
    ndarray of Axes
    """
    panels = list(panels)
    if axes is None:
        _, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.3), sharey=True, squeeze=False)
    axes = np.asarray(axes).ravel()
    xx, yy, grid = _grid(extent)
    prob = lambda f: np.asarray(f(grid), dtype=float).reshape(xx.shape)  # noqa: E731  (H, W)
    for ax, (title, teacher, student) in zip(axes, panels):
        p_teacher = prob(teacher)  # (H, W)
        ax.contourf(xx, yy, p_teacher, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        if before is not None:
            ax.contour(xx, yy, prob(before), levels=[0.5], colors="0.35", linestyles=":", linewidths=1.5)
        ax.contour(xx, yy, p_teacher, levels=[0.5], colors="black", linewidths=1.8)
        ax.contour(xx, yy, prob(student), levels=[0.5], colors="#117a65", linewidths=2, linestyles="--")
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="RdBu_r", s=8, edgecolors="none")
        ax.set(title=title, xlabel="$x_1$", xlim=extent[:2], ylim=extent[2:])
    axes[0].set_ylabel("$x_2$")
    _toy_legend(axes[-1], before is not None)
    return axes
