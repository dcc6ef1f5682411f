"""Recordings and splits as notebook 01 shows them (``notebooks/01_data_preparation.ipynb``).

- :func:`plot_traces`: the first seconds of one trial, every channel stacked, with a scale bar per
  group of channels (EEG, EOG) and the pre-trial baseline marked.
- :func:`plot_test_shares`: for each fold and trial, the share of the trial's windows that the fold
  tests, with the trials cut across training and test hatched (what a window-level split does).

Plain numbers in, Axes out; nothing else from kdlib is imported.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from kdlib.plotting.core import _ax

__all__ = ["nice_scale", "plot_traces", "plot_test_shares"]


def nice_scale(value: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``value`` (a scale bar's length).

    Parameters
    ----------
    value : float
        A positive amplitude, e.g. the spacing between stacked traces.

    Returns
    -------
    float
    """
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"nice_scale: expected a positive amplitude, got {value!r}")
    power = 10.0 ** np.floor(np.log10(value))
    return float(max(m * power for m in (1, 2, 5) if m * power <= value * (1 + 1e-9)))


def _group_spacing(x: np.ndarray) -> float:
    """Vertical spacing of one group's traces: 5 median robust SDs, so that neighbours rarely touch."""
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=1))  # (C,)
    return float(5 * np.median(iqr) / 1.349) or 1.0


def plot_traces(time_s, groups: dict, baseline_s: float | None = None, title: str = "", ax=None):
    """Stacked traces of one trial, a scale bar per group of channels, the baseline shaded.

    Introduced in ``notebooks/01_data_preparation.ipynb``.

    Parameters
    ----------
    time_s : numpy.ndarray, shape (T,)
        Sample times in seconds from the trial start.
    groups : dict of str to (numpy.ndarray (C, T), list of str)
        Group name (e.g. ``"EEG"``, ``"EOG"``) -> its traces in µV and their channel names. Each
        group gets its own vertical scale (a channel's height is about five robust SDs of the
        group's traces; groups of fewer than 6 channels get taller channels, up to 3 rows) and a
        scale bar: EOG's is about ten times EEG's.
        Every trace is drawn around its own median over the samples shown (the offsets of raw EOG
        are removed for display only; the slow drift within the segment is kept).
    baseline_s : float, optional
        End of the pre-trial baseline (s): ``[0, baseline_s]`` is shaded and labelled.
    title : str
        Axes title.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure sized to the number of channels).

    Returns
    -------
    matplotlib Axes
    """
    time_s = np.asarray(time_s, dtype=float)
    n_channels = sum(len(names) for _, names in groups.values())
    ax = _ax(ax, figsize=(10, 0.2 * n_channels + 2.2))
    colours = {"EOG": "#C44E52"}
    y, ticks, labels = 0.0, [], []  # one row per channel, rows counted downwards from 0
    x_bar = time_s[-1] + 0.015 * (time_s[-1] - time_s[0])
    for name, (traces, names) in groups.items():
        traces = np.asarray(traces, dtype=float)
        traces = traces - np.median(traces, axis=1, keepdims=True)  # (C, T), display offsets removed
        height = min(3.0, max(1.0, 6.0 / len(names)))  # rows per channel: a group of few channels gets taller ones
        spacing = _group_spacing(traces)  # µV per channel's height in this group
        bar = nice_scale(spacing)
        start = y
        for trace, ch in zip(traces, names):
            y -= height
            ax.plot(time_s, trace / spacing * height + y, lw=0.6, color=colours.get(name, "#333333"))
            ticks.append(y)
            labels.append(ch)
        mid = (start + y) / 2
        half = bar / spacing * height / 2  # half the scale bar, in rows
        ax.plot([x_bar, x_bar], [mid - half, mid + half], color="k", lw=2.5, solid_capstyle="butt", clip_on=False)
        ax.text(x_bar, mid, f"  {bar:g} µV\n  ({name})", ha="left", va="center", fontsize=8, clip_on=False)
        y -= 0.6 * height  # a gap before the next group (and below the last trace)
    top = 0.0
    if baseline_s is not None:
        ax.axvspan(time_s[0], baseline_s, color="grey", alpha=0.15, lw=0)
        ax.axvline(baseline_s, color="k", ls="--", lw=0.8)
        ax.text((time_s[0] + baseline_s) / 2, top, "pre-trial baseline", ha="center", va="bottom", fontsize=8)
        ax.text(baseline_s, top, " video starts", ha="left", va="bottom", fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set(xlim=(time_s[0], time_s[-1]), ylim=(y, top + 1.0), xlabel="time (s)", title=title)
    return ax


def plot_test_shares(trial, folds, ax=None, cmap: str = "Purples"):
    """Per fold (rows) and trial (columns): the share of the trial's windows in the fold's test set.

    A trial-level split gives 0 or 1 in every cell; a window-level split gives fractions, and a
    cell with a fraction strictly between 0 and 1 (the trial sits on both sides) is hatched.

    Parameters
    ----------
    trial : numpy.ndarray, shape (N,)
        Trial id of every window (one subject).
    folds : sequence of objects with ``index`` and ``test``
        E.g. :class:`kdlib.data.splits.Fold`: ``test`` holds window indices into ``trial``.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure sized to the grid).
    cmap : str
        Sequential colour map of the share (0 white).

    Returns
    -------
    matplotlib Axes
    """
    trial = np.asarray(trial)
    trials = np.unique(trial)  # (n_trials,)
    per_trial = np.bincount(np.searchsorted(trials, trial), minlength=len(trials))  # (n_trials,) windows
    tested = [np.bincount(np.searchsorted(trials, trial[np.asarray(f.test, dtype=int)]), minlength=len(trials))
              for f in folds]  # n_folds x (n_trials,) test windows per trial
    shares = np.array(tested) / per_trial  # (n_folds, n_trials)
    ax = _ax(ax, figsize=(max(6, 0.16 * len(trials)), 0.5 * len(folds) + 1.2))
    im = ax.imshow(shares, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    for r, c in zip(*np.nonzero((shares > 0) & (shares < 1))):  # the trial is on both sides of this fold
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="////", edgecolor="#333333", lw=0))
    ax.set_yticks(range(len(folds)), [f"fold {f.index}" for f in folds])
    step = max(1, len(trials) // 10)
    ax.set_xticks(range(0, len(trials), step), trials[::step])
    ax.set_xlabel("trial")
    plt.colorbar(im, ax=ax, label="share of the trial's\nwindows in test", fraction=0.04, pad=0.02)
    return ax
