"""Plots of notebook 03 (the aligned student): the KD loss against the student's logit gap, and the
students' features mapped into the teacher's PCA plane with their R².

Both take numbers (arrays, dicts of arrays), never models: the notebook computes the curves from
its own inline ``kd_loss`` and the mapped features from its trained students.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from kdlib.plotting.core import _ax, plot_feature_pca

__all__ = ["plot_kd_curves", "r_squared", "plot_mapped_pca"]


def plot_kd_curves(gap, curves: dict, teacher_gap: float, ax=None):
    """A KD loss against the student's logit gap, one colour per temperature: as computed (solid) and
    divided by ``T²`` (dashed).

    Introduced in ``notebooks/03_student_alignment.ipynb``, section 4: the curves come from the
    notebook's inline ``kd_loss``, so a change to that function (e.g. dropping its ``T²``) shows here.

    Parameters
    ----------
    gap : array-like, shape (G,)
        Student logit gaps ``z_1 - z_0`` (x axis).
    curves : dict of float -> array-like, shape (G,)
        Temperature ``T`` -> the loss of one window at each gap.
    teacher_gap : float
        The teacher's logit gap, marked by a dotted line (the loss is 0 there).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax, figsize=(6, 3.4))
    gap = np.asarray(gap, dtype=float)
    for colour, (temperature, loss) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], curves.items()):
        loss = np.asarray(loss, dtype=float)  # (G,)
        ax.plot(gap, loss, color=colour, label=f"T = {temperature:g}")
        ax.plot(gap, loss / temperature ** 2, color=colour, ls="--", lw=1)
    ax.axvline(teacher_gap, color="k", lw=0.8, ls=":")
    ax.plot([], [], color="0.4", ls="--", lw=1, label="÷ $T^2$")
    ax.set(xlabel=f"student logit gap $z_1 - z_0$ (teacher: {teacher_gap:g})", ylabel="KD loss of one window",
           title="kd_loss as written (solid) and divided by $T^2$ (dashed)")
    ax.legend(frameon=False)
    return ax


def r_squared(pred, target) -> float:
    """Share of the target's variance (about its column means) that ``pred`` reproduces.

    Parameters
    ----------
    pred, target : array-like, shape (N, F)
        Predicted and true features of the same N examples.

    Returns
    -------
    float
        ``1 - SSE / SST``: 1 for a perfect map, 0 for predicting the mean, negative when worse.
    """
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target need the same shape, got {pred.shape} and {target.shape}")
    sst = ((target - target.mean(axis=0)) ** 2).sum()
    return float(1 - ((pred - target) ** 2).sum() / sst) if sst > 0 else float("nan")


def plot_mapped_pca(teacher, mapped: dict, labels=None, class_names=("low", "high"), title: str = ""):
    """Each student's mapped features in the teacher's PCA plane, its R² against the teacher in its title.

    Introduced in ``notebooks/03_student_alignment.ipynb``, section 7.

    Parameters
    ----------
    teacher : ndarray, shape (N, F)
        The teacher's features of N windows (the PCA is fitted on them).
    mapped : dict of str -> ndarray, shape (N, F)
        Model name -> its features of the same windows mapped into the teacher's space.
    labels : ndarray, shape (N,), optional
        Class of each window (marker colour).
    class_names : sequence of str
        Legend entries of the classes.
    title : str
        The figure's title.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    axes = plot_feature_pca(teacher, mapped, labels=labels, class_names=class_names)
    for ax, (name, feats) in zip(axes, mapped.items()):
        ax.set_title(f"{name}: R² {r_squared(feats, teacher):.2f}")
    fig = axes[0].figure
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return axes
