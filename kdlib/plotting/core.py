"""The notebooks' everyday plots: ratings, folds, traces, histories, scores, ablations, sweeps.

Every ``plot_*`` takes ``ax=None`` and returns the Axes.

Figures drawn from the synthetic data set carry a visible "synthetic data" mark
(:func:`mark_synthetic`), so that nobody mistakes them for results on real EEG.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.transforms import Bbox
from matplotlib.ticker import MaxNLocator
import numpy as np
import seaborn as sns

__all__ = [
    "SIDE_COLOURS",
    "SYNTHETIC_NOTE",
    "SMOKE_NOTE",
    "set_style",
    "METRIC_LABELS",
    "plot_feedback_steps",
    "mark_synthetic",
    "plot_ratings",
    "plot_folds",
    "plot_eog_blinks",
    "plot_band_topomaps",
    "plot_feature_pca",
    "plot_history",
    "plot_gates",
    "plot_scores",
    "plot_ablation",
    "mark_ceilings",
    "plot_contrasts",
    "plot_loss_shares",
    "plot_confusion",
    "mark_smoke",
    "plot_sweep",
]

SIDE_COLOURS = {"train": "#4C72B0", "quiz": "#55A868", "val": "#DD8452", "test": "#C44E52", "leak": "#8172B3"}
SYNTHETIC_NOTE = "SYNTHETIC DATA (kdlib generator), not real EEG"
SMOKE_NOTE = "SMOKE RUN: tiny models, a few epochs — these numbers say nothing about the method"


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


def _collides(fig, stamp) -> bool:
    """Whether ``stamp`` (a figure text) comes within 3 points of any other visible text of ``fig``."""
    renderer = fig.canvas.get_renderer()
    gap = 3 * fig.dpi / 72  # 3 points of clearance: texts that merely touch read as one
    x0, y0, x1, y1 = stamp.get_window_extent(renderer).extents
    box = Bbox.from_extents(x0 - gap, y0 - gap, x1 + gap, y1 + gap)
    others = (t.get_window_extent(renderer) for t in fig.findobj(match=plt.Text)
              if t is not stamp and t.get_visible() and t.get_text().strip())
    return any(box.overlaps(other) for other in others if other.width > 1 and other.height > 1)


def _stamp(fig, text: str, corners, **style):
    """Write ``text`` in the first of ``corners`` where it overlaps no other text; else the first, boxed.

    The figure's layout is applied first (``draw_without_rendering``), so titles and tick labels sit
    where they will be drawn. Each corner is ``(x, y, ha, va)`` in figure coordinates.
    """
    fig.draw_without_rendering()
    for x, y, ha, va in corners:
        stamp = fig.text(x, y, text, ha=ha, va=va, **style)
        if not _collides(fig, stamp):
            return stamp
        stamp.remove()
    x, y, ha, va = corners[0]
    style.setdefault("bbox", dict(facecolor="white", edgecolor="none", alpha=0.9, pad=1))
    return fig.text(x, y, text, ha=ha, va=va, **style)  # readable on top of what it covers


def mark_synthetic(target, synthetic: bool = True):
    """Stamp a figure or Axes with :data:`SYNTHETIC_NOTE` when ``synthetic`` is True.

    Parameters
    ----------
    target : matplotlib Figure or Axes
        The stamp goes on the figure (an Axes' own figure), in the first corner where it overlaps no
        title or label: top left, top right, bottom right, bottom left; where all four would, top
        left on a white box.
    synthetic : bool
        Whether the figure shows synthetic data; False leaves ``target`` untouched.

    Returns
    -------
    matplotlib Figure or Axes
        ``target``, for chaining.
    """
    if not synthetic:
        return target
    fig = target if isinstance(target, plt.Figure) else target.figure
    corners = [(0.005, 0.995, "left", "top"), (0.995, 0.995, "right", "top"), (0.995, 0.005, "right", "bottom"),
               (0.005, 0.005, "left", "bottom")]
    _stamp(fig, SYNTHETIC_NOTE, corners,
           fontsize=8, color="#B22222", alpha=0.9, style="italic")
    return target


def mark_smoke(target, smoke: bool = True):
    """Stamp a figure or Axes with :data:`SMOKE_NOTE` when ``smoke`` is True.

    Parameters
    ----------
    target : matplotlib Figure or Axes
    smoke : bool
        Whether the figure comes from a smoke run (``model_preset`` or ``train_preset`` "smoke").

    Returns
    -------
    ``target``, for chaining.

    Notes
    -----
    The banner sits at the bottom left (bottom right where the left would overlap a label or
    :func:`mark_synthetic`'s stamp, which may itself have moved to a bottom corner) on a white box,
    so it stays readable over the axes.
    """
    if not smoke:
        return target
    fig = target if isinstance(target, plt.Figure) else target.figure
    _stamp(fig, SMOKE_NOTE, [(0.005, 0.005, "left", "bottom"), (0.995, 0.005, "right", "bottom")],
           fontsize=8, color="#B22222", weight="bold",
           bbox=dict(facecolor="white", edgecolor="#B22222", alpha=0.9, pad=2))
    return target


def plot_ratings(ratings, threshold: float = 5.0, names=("valence", "arousal"), ax=None):
    """Histogram of the self-assessment ratings of each task with the binarisation threshold.

    Parameters
    ----------
    ratings : pandas.DataFrame
        One row per trial with columns ``names`` (e.g. ``WindowSet.trial_table()``).
    threshold : float
        Where the binarisation cuts (a dashed line; :func:`kdlib.data.windows.binarize`).
    names : sequence of str
        The rating columns to draw, one translucent histogram each (bins of 0.25 over 1-9).
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax)
    bins = np.linspace(1, 9, 33)
    for name in names:
        ax.hist(ratings[name], bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="rating (1-9)", ylabel="trials", title="Self-assessment ratings")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of trials: whole numbers
    ax.legend(frameon=False)
    return ax


def plot_folds(table, subject: str | None = None, ax=None):
    """Trials (columns) x folds (rows), coloured by the side each trial is on.

    A clean trial-level split shows every column with exactly one test cell; a trial with
    windows on two sides of a fold (a leak) gets its own colour.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`kdlib.data.splits.fold_table` output: one row per (fold, subject, trial, side),
        ``side`` one of ``train``, ``quiz``, ``val``, ``test``.
    subject : str, optional
        Draw this subject's rows only (default: every row of ``table``; give one subject when
        the table holds several, whose trial numbers would overlap).
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure sized to the grid).

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if subject is not None:
        table = table[table["subject"] == subject]
    sides = [s for s in ("train", "quiz", "val", "test") if s != "quiz" or (table["side"] == "quiz").any()]
    grid = table.assign(code=table["side"].map(sides.index))
    per_cell = grid.groupby(["fold", "trial"])["code"]
    codes = per_cell.max().where(per_cell.nunique() == 1, len(sides)).unstack()  # len(sides) = split (leak)
    ax = _ax(ax, figsize=(max(6, 0.16 * codes.shape[1]), 0.5 * codes.shape[0] + 1.2))
    colours = [SIDE_COLOURS[s] for s in sides] + [SIDE_COLOURS["leak"]]
    ax.imshow(codes.to_numpy(), aspect="auto", cmap=ListedColormap(colours), vmin=-0.5, vmax=len(sides) + 0.5,
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
    """A vEOG trace with the blinks MNE found marked.

    Parameters
    ----------
    time_s : numpy.ndarray, shape (n_samples,)
        Sample times in seconds, increasing.
    veog : numpy.ndarray, shape (n_samples,)
        The vEOG trace (µV).
    blink_times : numpy.ndarray, shape (n_blinks,)
        Blink times in seconds on the same clock (:func:`kdlib.data.mne_io.find_blinks`); each
        is marked at the nearest sample.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax, figsize=(9, 2.8))
    ax.plot(time_s, veog, lw=0.7, color="#333333")
    idx = np.clip(np.searchsorted(time_s, blink_times), 0, len(time_s) - 1)
    ax.plot(time_s[idx], veog[idx], "v", color="#C44E52", ms=8, label=f"{len(blink_times)} blinks (MNE)")
    ax.set(xlabel="time (s)", ylabel="vEOG (µV)")
    ax.legend(loc="upper right", frameon=False)
    return ax


def plot_band_topomaps(maps: dict, info, axes=None, cmap="RdBu_r", units="dB"):
    """One topomap per entry of ``maps`` (name -> per-channel values) with shared colour limits.

    Parameters
    ----------
    maps : dict of str to array-like, each of shape (n_channels,)
        Title -> one value per channel of ``info``, in its order.
    info : mne.Info
        Channel names and positions of the EEG channels (a montage must be set).
    axes : array of matplotlib Axes, optional
        One per map (default: a new row of ``len(maps)`` Axes).
    cmap : str
        Colour map. With the default diverging ``"RdBu_r"`` the limits are symmetric about 0
        (± the largest absolute value over all maps); with any other map MNE picks the limits
        of each map and the colour bar is that of the last one.
    units : str
        Label of the shared colour bar.

    Returns
    -------
    numpy.ndarray of matplotlib Axes
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


# --- training and models (notebooks/02_fusion_teacher.ipynb) ----------------------------------

HISTORY_LABELS = {"train_loss": "training loss", "val_loss": "validation loss", "train_acc": "training accuracy",
                  "val_acc": "validation accuracy", "val_f1": "validation macro F1"}


def plot_history(history, metric: str = "val_loss", hue: str = "model", min_folds: int = 2, ax=None,
                 legend: bool = True):
    """Learning curves: ``metric`` per epoch, one line per model (mean over folds).

    Introduced in ``notebooks/02_fusion_teacher.ipynb``.

    Parameters
    ----------
    history : pandas.DataFrame
        Long table with columns ``epoch``, ``metric`` and ``hue`` (e.g. the
        ``FitResult.history`` of every fit, concatenated with a ``model`` column), and
        optionally ``fold``.
    metric : str
        Column to draw, e.g. ``"train_loss"``, ``"val_loss"``, ``"val_acc"``.
    hue : str
        Column whose values get one colour (and one thick line) each, in order of appearance.
    min_folds : int
        The mean is drawn only over epochs that at least this many folds reached (at most the
        number of folds), so that it does not end in the noise of a single fold.
    ax : matplotlib Axes, optional
    legend : bool
        Draw a legend of the ``hue`` values.

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    With a ``fold`` column and more than one fold, each fold is drawn as a thin line and the
    mean over the folds that reached an epoch as a thick one. Early stopping ends folds at
    different epochs, so the mean of late epochs rests on fewer folds (see ``min_folds``).
    """
    ax = _ax(ax, figsize=(5, 3.5))
    folds = history["fold"].nunique() if "fold" in history else 1
    for colour, (name, part) in zip(sns.color_palette(n_colors=history[hue].nunique()),
                                    history.groupby(hue, sort=False)):
        if folds > 1:
            for _, one in part.groupby("fold"):
                ax.plot(one["epoch"], one[metric], color=colour, lw=0.6, alpha=0.35)
        per_epoch = part.groupby("epoch")[metric]
        mean = per_epoch.mean()[per_epoch.count() >= min(min_folds, folds)]
        ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2, marker="o", ms=3, label=str(name))
    ax.set(xlabel="epoch", ylabel=HISTORY_LABELS.get(metric, metric))
    ax.xaxis.get_major_locator().set_params(integer=True)
    if legend:
        ax.legend(frameon=False, fontsize="small")
    return ax


def plot_gates(gates: dict, split: int | None = None, axes=None, names=("EEG", "EOG"), cmap: str = "RdBu_r"):
    """Mean fusion gate per feature and token: one heatmap per depth pair.

    Introduced in ``notebooks/02_fusion_teacher.ipynb``.

    Parameters
    ----------
    gates : dict of str -> ndarray (B, L, F)
        Gates of a batch, e.g. ``teacher.gate_maps(teacher(eeg=eeg, eog=eog))``
        (:meth:`kdlib.models.FusionTeacher.gate_maps`: ``{"1-2": ..., "2-3": ...}``);
        each panel shows the mean over the ``B`` windows, features (rows) x tokens (columns).
    split : int, optional
        First feature of the second modality (``d_model`` for the teacher's concatenated
        features): a line is drawn there and the halves are labelled with ``names``.
    axes : array of matplotlib Axes, optional
        One per entry of ``gates``.
    names : (str, str)
        Labels of the two feature halves.
    cmap : str
        A diverging colour map: gates lie in (-1, 1), with shared symmetric limits.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    means = {k: np.asarray(v).mean(axis=0).T for k, v in gates.items()}  # (F, L) each
    if axes is None:
        _, axes = plt.subplots(1, len(means), figsize=(4.4 * len(means) + 2.0, 3.8), sharey=True,
                               squeeze=False, layout="constrained")
    axes = np.ravel(axes)
    lim = max(float(np.abs(m).max()) for m in means.values()) or 1.0
    for ax, (pair, m) in zip(axes, means.items()):
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        i, _, j = pair.partition("-")
        ax.set(title=f"depth {i} scores depth {j}" if j else pair, xlabel="token")
        if split is not None:
            ax.axhline(split - 0.5, color="k", lw=1)
            ax.set_yticks([split / 2 - 0.5, split + (m.shape[0] - split) / 2 - 0.5], list(names))
    if split is None:
        axes[0].set_ylabel("feature")
    plt.colorbar(im, ax=axes.tolist(), shrink=0.8, label="mean gate")
    return axes


def plot_scores(scores, metric: str = "accuracy", baseline: str | None = "majority_acc", model: str = "model",
                ax=None):
    """Test scores per model: a bar for the mean over folds, a dot per fold, the baseline as a line.

    Introduced in ``notebooks/02_fusion_teacher.ipynb``.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per (model, fold) with columns ``model``, ``metric`` and ``baseline``.
    metric : str
        Column drawn as bars, e.g. ``"accuracy"`` or ``"f1"``.
    baseline : str, optional
        Column of the floor to beat (e.g. ``"majority_acc"``); its mean over the rows of one
        model is drawn as a dashed horizontal line (the folds are the same for every model).
    model : str
        Column naming the models, in order of appearance.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax, figsize=(5, 3.5))
    names = list(dict.fromkeys(scores[model]))
    colours = sns.color_palette(n_colors=len(names))
    for x, (name, colour) in enumerate(zip(names, colours)):
        values = scores.loc[scores[model] == name, metric].to_numpy(dtype=float)
        ax.bar(x, values.mean(), width=0.6, color=colour, alpha=0.75)
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.plot(x + offsets, values, "o", color="k", ms=3.5, zorder=3)
    if baseline is not None:
        floor = scores.loc[scores[model] == names[0], baseline].mean()
        ax.axhline(floor, color="k", ls="--", lw=1, label=f"majority class ({floor:.2f})")
        ax.legend(frameon=False, fontsize="small", loc="upper right")
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel=metric, ylim=(0, 1))
    return ax


# --- evaluation (notebook 05, kdlib report) ---------------------------------------------------

#: Axis labels of the results table's score columns (:func:`kdlib.evaluate.scores`).
METRIC_LABELS = {"acc_trial": "trial accuracy", "f1_trial": "trial macro F1", "f1_trial_pooled": "trial macro F1 (pooled)",
                 "acc_window": "window accuracy", "f1_window": "window macro F1"}


#: Where :func:`plot_ablation` and :func:`mark_ceilings` put their legend: right of the axes, top-aligned.
_LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}


def plot_ablation(per_subject, metric: str = "acc_trial", names: dict | None = None, ax=None,
                  chance="auto", level: float = 0.95):
    """Per method: every subject as a point, the mean over subjects with its t interval.

    The majority-class accuracy is dashed, with the chance band of a *mean over subjects* around
    it (a classifier that only guesses, right at each subject's majority rate), so that a mean
    can be read against the noise of a mean, not of a single subject.

    Parameters
    ----------
    per_subject : pandas.DataFrame
        One task's rows of :func:`kdlib.evaluate.summarize`'s per-subject table (seeds already
        averaged); ``n_trials`` and ``majority_trial`` give the chance band.
    metric : str
        Column to plot (``acc_trial``, ``f1_trial``, ``f1_trial_pooled``, ``acc_window``, ...).
    names : dict, optional
        Method -> label.
    ax : matplotlib Axes, optional
    chance : "auto", (float, float) or None
        The band: computed with :func:`kdlib.stats.chance_band` from the table ("auto", drawn
        when the table has ``n_trials``), given as (low, high), or not drawn (None).
    level : float
        Coverage of the intervals of the means.

    Returns
    -------
    matplotlib Axes
        Bars: the means; one ``errorbar`` container: the ``level`` t intervals over subjects.
    """
    from kdlib import stats

    ax = _ax(ax, figsize=(8, 4))
    methods = list(dict.fromkeys(per_subject["method"]))
    labels = [(names or {}).get(m, m) for m in methods]
    intervals = np.array([stats.t_interval(per_subject.loc[per_subject["method"] == m, metric], level)
                          for m in methods])  # (M, 3): mean, low, high
    x = np.arange(len(methods))
    ax.bar(x, intervals[:, 0], color=sns.color_palette("deep", len(methods)), alpha=0.45)
    rng = np.random.default_rng(0)  # fixed jitter: same picture every run
    for i, m in enumerate(methods):
        vals = per_subject.loc[per_subject["method"] == m, metric].to_numpy()
        ax.plot(i + rng.uniform(-0.18, 0.18, len(vals)), vals, "o", color="#222222", ms=4, alpha=0.7)
    err = np.nan_to_num(np.abs(intervals[:, 1:].T - intervals[:, 0]), nan=0.0)  # (2, M)
    ax.errorbar(x, intervals[:, 0], yerr=err, fmt="D", color="k", ms=5, capsize=5, lw=1.6, zorder=4,
                label=f"mean, {100 * level:.0f} % CI over subjects")
    first = per_subject[per_subject["method"] == methods[0]]
    majority = per_subject.groupby("method")["majority_trial"].mean().mean()
    if isinstance(chance, str) and chance == "auto":
        chance = (stats.chance_band(np.rint(first["n_trials"]).astype(int), first["majority_trial"])
                  if "n_trials" in per_subject else None)
    if chance is not None:
        ax.axhspan(*chance, color="0.6", alpha=0.25, lw=0,
                   label=f"chance band, mean over {len(first)} subjects")
    ax.axhline(majority, color="k", ls="--", lw=1, label=f"majority class {majority:.2f}")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize="small", **_LEGEND_OUTSIDE)  # beside the axes: no bar hidden
    return ax


#: How :func:`mark_ceilings` draws each ceiling: label, colour, line style.
CEILING_STYLES = {"label_ceiling": ("label ceiling", "#222222", "-."), "eeg_ceiling": ("EEG ceiling", "#4C72B0", ":"),
                  "eog_ceiling": ("EOG ceiling", "#C44E52", ":")}


def mark_ceilings(ax, summary, task: str | None = None):
    """Horizontal lines at the ceilings of one task (synthetic data): label, EEG and EOG.

    Introduced in ``notebooks/05_evaluation.ipynb``; ``kdlib report`` draws them on its ablation figures.

    Parameters
    ----------
    ax : matplotlib Axes
        An accuracy axis, e.g. :func:`plot_ablation`'s.
    summary : pandas.DataFrame
        :func:`kdlib.ceilings.ceiling_summary` (means over subjects, fractions).
    task : str, optional
        Which task's row (default: the first).

    Returns
    -------
    matplotlib Axes
        With one labelled line per ceiling present (:data:`CEILING_STYLES`) and a legend.
    """
    rows = summary if task is None else summary[summary["task"] == task]
    for col, (label, color, style) in CEILING_STYLES.items():
        value = float(rows[f"{col}_mean"].iloc[0]) if len(rows) and f"{col}_mean" in rows else np.nan
        if np.isfinite(value):
            ax.axhline(value, color=color, ls=style, lw=1.3, label=f"{label} {100 * value:.0f} %")
    ax.legend(frameon=False, fontsize=7, **_LEGEND_OUTSIDE)  # beside the axes: no bar hidden
    return ax


def plot_confusion(counts, title: str = "", ax=None):
    """A 2 x 2 confusion matrix (rows: true low/high, columns: predicted) as a heatmap.

    Parameters
    ----------
    counts : array-like of int, shape (2, 2)
        ``[[tn, fp], [fn, tp]]``.
    title : str
        Axes title.
    ax : matplotlib Axes, optional
        Where to draw (default: a new 3 x 2.8 in figure).

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax, figsize=(3, 2.8))
    counts = np.asarray(counts)
    sns.heatmap(counts, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax,
                xticklabels=["low", "high"], yticklabels=["low", "high"])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return ax


# --- distillation (notebooks/03_student_alignment.ipynb) ---------------------------------------

def plot_feature_pca(reference, others: dict, labels=None, axes=None, reference_name: str = "teacher",
                     class_names=("low", "high"), other_name: str = "student"):
    """Features of several models in the 2-D PCA plane of a reference model's features.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    reference : ndarray (N, F)
        E.g. the teacher's pooled fused features of N windows; the PCA is fitted on them.
    others : dict of str -> ndarray (N, F)
        Features of the same windows in the reference's space (e.g. each student's features
        mapped by a linear fit to the teacher's); one panel each.
    labels : ndarray (N,), optional
        Class of each window: marker colour.
    axes : array of matplotlib Axes, optional
        One per entry of ``others``.
    reference_name : str
        Legend entry of the hollow circles.
    class_names : sequence of str
        Legend entries of the classes' colours.
    other_name : str
        Legend entry of the filled dots (the model named in each panel's title).

    Returns
    -------
    ndarray of matplotlib Axes

    Notes
    -----
    Each panel shows the reference as hollow circles and the model as filled dots, with a thin
    line from every window's reference point to its model point: short lines mean the model's
    features land where the reference's are.
    """
    from matplotlib.lines import Line2D

    reference = np.asarray(reference, dtype=np.float64)
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    basis = vt[:2].T  # (F, 2)
    ref2 = (reference - mean) @ basis  # (N, 2)
    if axes is None:
        _, axes = plt.subplots(1, len(others), figsize=(3.6 * len(others) + 1.2, 3.6), sharex=True,
                               sharey=True, squeeze=False)
    axes = np.ravel(axes)
    labels = np.zeros(len(reference), dtype=int) if labels is None else np.asarray(labels, dtype=int)
    colours = sns.color_palette(n_colors=max(2, int(labels.max()) + 1))
    for ax, (name, feats) in zip(axes, others.items()):
        pts = (np.asarray(feats, dtype=np.float64) - mean) @ basis  # (N, 2)
        ax.plot(np.c_[ref2[:, 0], pts[:, 0]].T, np.c_[ref2[:, 1], pts[:, 1]].T, color="0.75", lw=0.5, zorder=1)
        for c in np.unique(labels):
            m = labels == c
            ax.scatter(*ref2[m].T, s=16, facecolors="none", edgecolors=colours[c], lw=0.8, zorder=2)
            ax.scatter(*pts[m].T, s=10, color=colours[c], zorder=3,
                       label=class_names[c] if c < len(class_names) else str(c))
        ax.set(title=name, xlabel="PC 1")
    axes[0].set_ylabel("PC 2")
    handles = [Line2D([], [], ls="none", marker="s", color=colours[c], label=class_names[c] if c < len(class_names)
                      else str(c)) for c in np.unique(labels)]  # colour: the window's class
    handles.append(Line2D([], [], ls="none", marker="o", color="0.3", ms=4, label=f"{other_name} (panel title)"))
    handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.3", label=reference_name))
    axes[-1].legend(handles=handles, frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return axes


def plot_feedback_steps(steps, window: int = 8, axes=None):
    """The per-step log of dynamic-feedback distillation (``DistillResult.steps``), in four panels.

    Introduced in ``notebooks/04_dynamic_feedback_distillation.ipynb``.

    Parameters
    ----------
    steps : pandas.DataFrame
        Columns ``step``, ``phase``, ``student_loss``, ``teacher_ce_batch``, ``lookahead_ce``,
        ``student_acc``, ``teacher_acc``, ``teacher_update``, ``alpha``, ``temperature``
        (:func:`kdlib.distill.feedback.distill_feedback`).
    window : int
        Rolling mean over this many steps for the noisy per-batch curves (thin: raw).
    axes : array of 4 Axes, optional

    Returns
    -------
    ndarray of Axes
    """
    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    axes = np.asarray(axes).ravel()
    fb = steps[steps["phase"] == "feedback"]
    roll = lambda col: steps[col].rolling(window, min_periods=1).mean()  # noqa: E731
    for col, label, colour in (("student_loss", "student loss (CE + αKD + βfeat)", "C0"),
                               ("teacher_ce_batch", "teacher CE", "C1")):
        axes[0].plot(steps["step"], steps[col], color=colour, lw=0.6, alpha=0.35)
        axes[0].plot(steps["step"], roll(col), color=colour, label=label)
    axes[0].plot(fb["step"], fb["lookahead_ce"], "o", ms=3, color="C3", label="temporary student's CE (feedback)")
    axes[0].set(xlabel="training step", ylabel="loss", title="both losses")
    for col, label, colour in (("student_acc", "student", "C0"), ("teacher_acc", "teacher", "C1")):
        axes[1].plot(steps["step"], roll(col), color=colour, label=label)
    axes[1].set(xlabel="training step", ylabel=f"batch accuracy (rolling {window})", title="accuracy on training batches")
    axes[2].vlines(fb["step"], 0, fb["teacher_update"], color="C3")
    axes[2].set(xlabel="training step", ylabel="‖Δφ‖ (teacher)", title="size of the teacher's update", ylim=(0, None))
    axes[3].plot(steps["step"], steps["alpha"], color="C2", label="α (KD weight)")
    axes[3].plot(steps["step"], steps["temperature"], color="C4", label="T (temperature)")
    axes[3].set(xlabel="training step", ylabel="value", title="guidance weights", ylim=(0, None))
    for ax in axes[[0, 1, 3]]:
        ax.legend(frameon=False, fontsize=8)
    return axes


def plot_contrasts(table, metric: str = "acc_trial", ax=None):
    """Forest plot of paired contrasts: mean difference and its interval per contrast and task.

    Introduced in ``notebooks/05_evaluation.ipynb``; ``kdlib report`` draws one per task.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`kdlib.stats.paired_contrasts` output (columns ``task, contrast, mean_diff,
        ci_low, ci_high, p_holm`` and ``metric``); rows of other metrics are left out.
    metric : str
        Which metric's contrasts to draw.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        One ``errorbar`` container per task (one bar per contrast), a vertical line at 0 and
        one Holm-adjusted p annotated beside every interval. An undefined interval (fewer than
        2 subjects) is drawn as a point.
    """
    if "metric" in table:
        table = table[table["metric"] == metric]
    contrasts = list(dict.fromkeys(table["contrast"]))
    tasks = list(dict.fromkeys(table["task"]))
    ax = _ax(ax, figsize=(7, 0.55 * len(contrasts) * max(1, len(tasks)) + 1.2))
    step = 0.7 / max(1, len(tasks))
    ax.axvline(0, color="k", lw=1)
    for j, (task, colour) in enumerate(zip(tasks, sns.color_palette(n_colors=len(tasks)))):
        part = table[table["task"] == task]
        y = np.array([contrasts.index(c) for c in part["contrast"]]) + (j - (len(tasks) - 1) / 2) * step
        mean = part["mean_diff"].to_numpy(dtype=float)
        err = np.nan_to_num(np.abs(part[["ci_low", "ci_high"]].to_numpy(dtype=float).T - mean), nan=0.0)
        ax.errorbar(mean, y, xerr=err, fmt="o", color=colour, capsize=4, label=task)
        for yi, hi, m, p in zip(y, part["ci_high"], mean, part["p_holm"]):
            text = f"p_Holm {p:.3f}" if np.isfinite(p) else "p_Holm n/a"
            ax.annotate(text, (hi if np.isfinite(hi) else m, yi), xytext=(5, 0), textcoords="offset points",
                        va="center", fontsize=7, color=colour)
    ax.set_yticks(range(len(contrasts)), contrasts)
    ax.set_ylim(len(contrasts) - 0.5, -0.5)  # first contrast on top
    ax.set_xlabel(f"difference in {METRIC_LABELS.get(metric, metric.replace('_', ' '))} (mean, 95 % CI over subjects)")
    ax.margins(x=0.25)
    if len(tasks) > 1:
        ax.legend(frameon=False, fontsize="small", loc="lower right")
    return ax


def plot_loss_shares(history, model: str | None = None, ax=None):
    """Each weighted term's share of a student's loss per epoch, stacked (mean over folds).

    Parameters
    ----------
    history : pandas.DataFrame
        ``kdlib.distill.distill`` histories (``epoch``, ``share_ce``, ``share_kd``, ``share_feat``),
        optionally with ``fold`` and ``model`` columns (several folds are averaged per epoch).
    model : str, optional
        Keep the rows of this ``model`` only.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax, (6, 3.4))
    h = history if model is None else history[history["model"] == model]
    shares = h.dropna(subset=["share_ce"]).groupby("epoch")[["share_ce", "share_kd", "share_feat"]].mean()
    labels = ("cross-entropy", "α · KD", "β · feature")
    ax.stackplot(shares.index, shares.to_numpy().T, labels=labels, alpha=0.85,
                 colors=sns.color_palette("deep", 3))
    ax.set(xlabel="epoch", ylabel="share of the student loss", ylim=(0, 1),
           title=f"{model}: what the loss is made of" if model else "what the loss is made of")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    ax.legend(loc="upper right", frameon=True, fontsize="small")
    return ax


# --- the sweep (notebooks/07_when_does_distillation_help.ipynb, kdlib sweep) -------------------

SWEEP_STYLE = {"V1 − scratch": ("C0", "-"), "V2 − scratch": ("C1", "-"), "V3 − scratch": ("C2", "-"),
               "teacher − scratch": ("0.35", ":"), "EOG ceiling − scratch": ("k", "--")}


def plot_sweep(gains, column: str, label: str | None = None, contrasts=None, ax=None, scale: float = 100.0):
    """Gain over the scratch student against one knob: each contrast with its interval as a band.

    Introduced in ``notebooks/07_when_does_distillation_help.ipynb``; ``kdlib sweep`` draws one per
    task and knob.

    Parameters
    ----------
    gains : pandas.DataFrame
        One task's rows of :func:`kdlib.sweep.sweep_gains` along one knob
        (:func:`kdlib.sweep.knob_slice`): columns ``column``, ``contrast``, ``mean_diff``, ``ci_low``,
        ``ci_high``.
    column : str
        The knob's column, on the x axis (``synth_<knob>``, :func:`kdlib.sweep.knob_column`).
    label : str, optional
        The x axis label (default ``column``).
    contrasts : sequence of str, optional
        Which contrasts to draw (default: those of :data:`SWEEP_STYLE` present in ``gains``). The
        students (V1/V2/V3 − scratch) get a line with a shaded 95 % band; the teacher and the
        attainable gap (EOG ceiling − scratch) a line with error bars.
    ax : matplotlib Axes, optional
    scale : float
        Multiplier of the differences (100: percentage points).

    Returns
    -------
    matplotlib Axes
        One line per contrast (labelled by it) and a horizontal line at 0: the scratch student.
    """
    ax = _ax(ax, (6.4, 4.0))
    present = list(dict.fromkeys(gains["contrast"]))
    contrasts = [c for c in (contrasts or SWEEP_STYLE) if c in present]
    ax.axhline(0, color="k", lw=0.8)
    for name in contrasts:
        part = gains[gains["contrast"] == name].sort_values(column)
        x = part[column].to_numpy(dtype=float)
        mean, low, high = (scale * part[c].to_numpy(dtype=float) for c in ("mean_diff", "ci_low", "ci_high"))
        colour, ls = SWEEP_STYLE.get(name, (None, "-"))
        if name.startswith("V"):
            (line,) = ax.plot(x, mean, ls, marker="o", ms=4, color=colour, label=name)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
        else:
            err = np.nan_to_num(np.abs(np.vstack([low, high]) - mean), nan=0.0)  # (2, n)
            ax.errorbar(x, mean, yerr=err, fmt=ls, marker="s", ms=4, color=colour, capsize=3, lw=1.2, label=name)
    ax.set_xticks(sorted(set(gains[column].astype(float))))
    ax.set(xlabel=label or column, ylabel="Δ trial accuracy vs scratch (pp, 95 % CI)")
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax
