"""Plots for the notebooks. Every ``plot_*`` takes ``ax=None`` and returns the Axes.

Figures drawn from the synthetic data set carry a visible "synthetic data" mark
(:func:`mark_synthetic`), so that nobody mistakes them for results on real EEG.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = [
    "set_style",
    "mark_synthetic",
    "plot_ratings",
    "plot_folds",
    "plot_eog_blinks",
    "plot_band_topomaps",
]

SIDE_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#C44E52", "leak": "#8172B3"}
SYNTHETIC_NOTE = "SYNTHETIC DATA (kdlib generator), not real EEG"


def set_style(context: str = "notebook") -> None:
    """Seaborn's ticks style, a readable palette, PNG figures in notebooks (not SVG)."""
    sns.set_theme(context=context, style="ticks", palette="deep")
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 110, "axes.titlesize": "medium",
                         "figure.autolayout": False})
    try:  # inside IPython: inline PNG
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("png")
    except ImportError:
        pass


def _ax(ax, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def mark_synthetic(target, synthetic: bool = True):
    """Stamp a figure or Axes with :data:`SYNTHETIC_NOTE` when ``synthetic`` is True.

    Returns ``target`` for chaining.
    """
    if not synthetic:
        return target
    fig = target if isinstance(target, plt.Figure) else target.figure
    fig.text(0.995, 0.005, SYNTHETIC_NOTE, ha="right", va="bottom", fontsize=8, color="#B22222",
             alpha=0.9, style="italic")
    return target


def plot_ratings(ratings, threshold: float = 5.0, names=("valence", "arousal"), ax=None):
    """Histogram of the self-assessment ratings of each task with the binarisation threshold.

    Parameters
    ----------
    ratings : pandas.DataFrame
        One row per trial with columns ``names`` (e.g. ``WindowSet.trial_table()``).
    """
    ax = _ax(ax)
    bins = np.linspace(1, 9, 33)
    for name in names:
        ax.hist(ratings[name], bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="rating (1-9)", ylabel="trials", title="Self-assessment ratings")
    ax.legend(frameon=False)
    return ax


def plot_folds(table, subject: str | None = None, ax=None):
    """Trials (columns) x folds (rows), coloured by the side each trial is on.

    A clean trial-level split shows every column with exactly one test cell. ``table`` is
    :func:`kdlib.data.splits.fold_table` output; a trial with windows on two sides of a fold
    (a leak) gets its own colour.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if subject is not None:
        table = table[table["subject"] == subject]
    sides = ["train", "val", "test"]
    grid = table.assign(code=table["side"].map(sides.index))
    per_cell = grid.groupby(["fold", "trial"])["code"]
    codes = per_cell.max().where(per_cell.nunique() == 1, len(sides)).unstack()  # 3 = split (leak)
    ax = _ax(ax, figsize=(max(6, 0.16 * codes.shape[1]), 0.5 * codes.shape[0] + 1.2))
    colours = [SIDE_COLOURS[s] for s in sides] + [SIDE_COLOURS["leak"]]
    ax.imshow(codes.to_numpy(), aspect="auto", cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5,
              interpolation="nearest")
    ax.set_yticks(range(codes.shape[0]), [f"fold {f}" for f in codes.index])
    step = max(1, codes.shape[1] // 10)
    ax.set_xticks(range(0, codes.shape[1], step), codes.columns[::step])
    ax.set_xlabel("trial")
    labels = sides + (["split across sides (leak)"] if (codes.to_numpy() == len(sides)).any() else [])
    handles = [Patch(color=c, label=lab) for c, lab in zip(colours, labels)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def plot_eog_blinks(time_s, veog, blink_times, ax=None):
    """A vEOG trace with the blinks MNE found marked."""
    ax = _ax(ax, figsize=(9, 2.8))
    ax.plot(time_s, veog, lw=0.7, color="#333333")
    idx = np.clip(np.searchsorted(time_s, blink_times), 0, len(time_s) - 1)
    ax.plot(time_s[idx], veog[idx], "v", color="#C44E52", ms=8, label=f"{len(blink_times)} blinks (MNE)")
    ax.set(xlabel="time (s)", ylabel="vEOG (µV)")
    ax.legend(loc="upper right", frameon=False)
    return ax


def plot_band_topomaps(maps: dict, info, axes=None, cmap="RdBu_r", units="dB"):
    """One topomap per entry of ``maps`` (name -> per-channel values) with shared colour limits.

    Returns the array of Axes.
    """
    import mne

    if axes is None:
        _, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps) + 1.0, 3.4))
    axes = np.atleast_1d(axes)
    values = np.concatenate([np.ravel(v) for v in maps.values()])
    lim = float(np.max(np.abs(values))) if cmap == "RdBu_r" else None
    for ax, (name, vals) in zip(axes, maps.items()):
        vlim = (-lim, lim) if lim is not None else (None, None)
        im, _ = mne.viz.plot_topomap(np.asarray(vals), info, axes=ax, show=False, cmap=cmap, vlim=vlim)
        ax.set_title(name)
    plt.colorbar(im, ax=axes.tolist(), shrink=0.7, label=units)
    return axes
