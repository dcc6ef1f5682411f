"""kdlib.plotting: the figures of notebook 02 draw what their data say (lines, bars, images)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from kdlib import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def histories(models=("teacher", "eog_only"), folds=(0, 1, 2), epochs=4) -> pd.DataFrame:
    """A long history table; fold k of a model stops after ``epochs - k`` epochs (early stopping)."""
    rows = [dict(model=m, fold=k, epoch=e, val_loss=1.0 / e + 0.1 * k + i, val_acc=0.5)
            for i, m in enumerate(models) for k in folds for e in range(1, epochs - k + 1)]
    return pd.DataFrame(rows)


def scores_table() -> pd.DataFrame:
    acc = {"teacher": [0.6, 0.7], "late_fusion": [0.5, 0.6], "eog_only": [0.55, 0.65]}
    return pd.DataFrame([dict(model=m, fold=k, accuracy=a, f1=a - 0.1, majority_acc=0.5)
                         for m, values in acc.items() for k, a in enumerate(values)])


def test_history_draws_one_mean_line_per_model_and_one_thin_line_per_fold():
    table = histories()
    ax = plotting.plot_history(table, "val_loss", min_folds=1)
    assert len(ax.lines) == 2 * (3 + 1)  # per model: 3 folds + the mean
    thick = [line for line in ax.lines if line.get_label() in ("teacher", "eog_only")]
    assert [line.get_label() for line in thick] == ["teacher", "eog_only"]
    expected = table[table.model == "teacher"].groupby("epoch")["val_loss"].mean()
    np.testing.assert_allclose(thick[0].get_xdata(), expected.index)
    np.testing.assert_allclose(thick[0].get_ydata(), expected.to_numpy())
    assert ax.get_ylabel() == "validation loss"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["teacher", "eog_only"]


def test_history_mean_stops_where_too_few_folds_remain():
    ax = plotting.plot_history(histories(models=("teacher",)), "val_loss", min_folds=2)
    (mean,) = [line for line in ax.lines if line.get_label() == "teacher"]
    np.testing.assert_array_equal(mean.get_xdata(), [1, 2, 3])  # epoch 4: fold 0 only
    assert max(len(line.get_xdata()) for line in ax.lines) == 4  # the thin fold line goes on


def test_history_single_fold_and_no_legend():
    ax = plotting.plot_history(histories(folds=(0,)), "val_acc", legend=False)
    assert len(ax.lines) == 2 and ax.get_legend() is None
    assert ax.get_ylabel() == "validation accuracy"


def test_gates_show_the_mean_over_windows_per_pair():
    rng = np.random.default_rng(0)
    gates = {"1-2": rng.uniform(-0.5, 0.5, (5, 7, 6)), "2-3": rng.uniform(-0.9, 0.9, (5, 7, 6))}
    axes = plotting.plot_gates(gates, split=3)
    assert len(axes) == 2
    lim = max(np.abs(g.mean(0)).max() for g in gates.values())
    for ax, (pair, g) in zip(axes, gates.items()):
        (image,) = ax.get_images()
        np.testing.assert_allclose(image.get_array(), g.mean(axis=0).T)  # features x tokens
        assert image.get_clim() == pytest.approx((-lim, lim))  # shared, symmetric around 0
        assert ax.get_title() == f"depth {pair[0]} scores depth {pair[2]}"
        assert any(np.allclose(line.get_ydata(), 2.5) for line in ax.lines)  # the EEG/EOG boundary
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["EEG", "EOG"]  # shared y axis


def test_gates_without_split_label_features():
    axes = plotting.plot_gates({"1-2": np.ones((2, 4, 3))})
    assert len(axes) == 1 and axes[0].get_ylabel() == "feature" and not axes[0].lines


def test_scores_bars_are_fold_means_with_the_baseline_line():
    table = scores_table()
    ax = plotting.plot_scores(table, "accuracy", "majority_acc")
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.65, 0.55, 0.6])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["teacher", "late_fusion", "eog_only"]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(points) == 3 and all(len(line.get_xdata()) == 2 for line in points)
    (floor,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert np.allclose(floor.get_ydata(), 0.5) and floor.get_label() == "majority class (0.50)"
    assert ax.get_ylabel() == "accuracy"


def test_scores_without_baseline_draw_no_line():
    ax = plotting.plot_scores(scores_table(), "f1", baseline=None)
    assert not [line for line in ax.lines if line.get_linestyle() == "--"] and ax.get_legend() is None


def test_mark_synthetic_stamps_the_figure_only_when_asked():
    fig, ax = plt.subplots()
    assert plotting.mark_synthetic(ax, synthetic=False) is ax and not fig.texts
    plotting.mark_synthetic(ax)
    assert [t.get_text() for t in fig.texts] == [plotting.SYNTHETIC_NOTE]


# --- evaluation figures (notebook 05, kdlib report) --------------------------------------------

def ablation_subjects(n_subjects=6) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame([dict(task="valence", method=m, subject=f"s{s:02d}",
                              acc_trial=0.5 + shift + rng.normal(0, 0.05), majority_trial=0.55, n_trials=40)
                         for m, shift in (("majority", 0.05), ("scratch", 0.1), ("v3", 0.15))
                         for s in range(n_subjects)])


def test_ablation_draws_subject_points_and_mean_intervals_with_the_chance_band():
    from matplotlib.container import ErrorbarContainer
    from scipy import stats as sps

    from kdlib import stats

    table = ablation_subjects()
    ax = plotting.plot_ablation(table)
    assert ax.get_ylabel() == "trial accuracy"  # a readable label, not the column name
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segments,) = bars.lines[2]
    for (_, (lo, hi)), m in zip([seg.T for seg in segments.get_segments()], ("majority", "scratch", "v3")):
        x = table.loc[table["method"] == m, "acc_trial"]
        half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
        assert (lo, hi) == pytest.approx((x.mean() - half, x.mean() + half))
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(points) == 3 and all(len(p.get_xdata()) == 6 for p in points)
    (band,) = [p for p in ax.patches if p.get_label().startswith("chance band")]
    ys = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]  # data coordinates
    assert (ys.min(), ys.max()) == pytest.approx(stats.chance_band([40] * 6, 0.55))
    assert "mean over 6 subjects" in band.get_label()
    (floor,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert np.allclose(floor.get_ydata(), 0.55)


def test_ablation_band_can_be_given_or_left_out():
    table = ablation_subjects().drop(columns="n_trials")
    ax = plotting.plot_ablation(table)
    assert not [p for p in ax.patches if p.get_label().startswith("chance band")]  # nothing to compute it from
    ax = plotting.plot_ablation(table, chance=(0.4, 0.6))
    (band,) = [p for p in ax.patches if p.get_label().startswith("chance band")]
    ys = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((0.4, 0.6))


def contrasts_table(tasks=("valence", "arousal")) -> pd.DataFrame:
    rows = []
    for k, task in enumerate(tasks):
        for i, (label, mean) in enumerate((("V1 − scratch", 0.02), ("V3 − V2", -0.01), ("V3 − majority", 0.1))):
            rows.append(dict(task=task, metric="acc_trial", contrast=label, mean_diff=mean + 0.01 * k,
                             ci_low=mean - 0.03, ci_high=mean + 0.03, p_holm=0.01 * (i + 1)))
        rows.append(dict(task=task, metric="f1_trial", contrast="V1 − scratch", mean_diff=0.0, ci_low=np.nan,
                         ci_high=np.nan, p_holm=np.nan))
    return pd.DataFrame(rows)


def test_contrasts_forest_plot_one_errorbar_per_task_and_a_zero_line():
    from matplotlib.container import ErrorbarContainer

    ax = plotting.plot_contrasts(contrasts_table())
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2
    for bar, k in zip(bars, (0, 1)):
        (segments,) = bar.lines[2]
        xs = np.array([seg[:, 0] for seg in segments.get_segments()])
        np.testing.assert_allclose(np.sort(xs, axis=1), [(-0.01, 0.05), (-0.04, 0.02), (0.07, 0.13)])
        np.testing.assert_allclose(bar.lines[0].get_xdata(), np.array([0.02, -0.01, 0.1]) + 0.01 * k)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["V1 − scratch", "V3 − V2", "V3 − majority"]
    assert any(np.allclose(line.get_xdata(), 0) for line in ax.lines)
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["p_Holm 0.010", "p_Holm 0.020", "p_Holm 0.030"] * 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["valence", "arousal"]


def test_contrasts_forest_plot_of_another_metric_with_an_undefined_interval():
    from matplotlib.container import ErrorbarContainer

    ax = plotting.plot_contrasts(contrasts_table(tasks=("valence",)), metric="f1_trial")
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 1
    assert [t.get_text() for t in ax.texts] == ["p_Holm n/a"] and ax.get_legend() is None
    assert "difference in trial macro F1" in ax.get_xlabel()  # plotting.METRIC_LABELS, not the column name


def _overlap(fig, a, b):
    renderer = fig.canvas.get_renderer()
    return a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))


def test_stamps_move_off_a_title_or_a_label_they_would_cover():
    fig = plt.figure(figsize=(12, 3))  # wide enough for the smoke banner in either bottom corner
    top = fig.text(0.02, 0.99, "a title at the top left, as MNE's figures have", va="top")
    bottom = fig.text(0.02, 0.01, "a label at the bottom left", va="bottom")
    plotting.mark_synthetic(fig)
    plotting.mark_smoke(fig)
    stamp, banner = fig.texts[2:]
    assert stamp.get_ha() == "right" and banner.get_ha() == "right"  # moved to the free corners
    assert not _overlap(fig, stamp, top) and not _overlap(fig, banner, bottom)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title("short")
    fig.tight_layout()
    plotting.mark_synthetic(ax)
    assert fig.texts[0].get_ha() == "left" and fig.texts[0].get_bbox_patch() is None  # the usual corner
    fig = plt.figure(figsize=(12, 3))
    fig.suptitle("a title across the whole top " * 8)
    plotting.mark_synthetic(fig)  # the top is taken: bottom right
    assert (fig.texts[-1].get_ha(), fig.texts[-1].get_va()) == ("right", "bottom")
    fig = plt.figure(figsize=(3, 2))
    fig.suptitle("x" * 200)
    fig.supxlabel("x" * 200)  # covers every corner: the stamp stays top left, on a white box
    plotting.mark_synthetic(fig)
    assert fig.texts[-1].get_ha() == "left" and fig.texts[-1].get_bbox_patch() is not None


def test_mark_smoke_banner_only_when_asked():
    fig, ax = plt.subplots()
    assert plotting.mark_smoke(ax, smoke=False) is ax and not fig.texts
    plotting.mark_smoke(fig)
    plotting.mark_synthetic(fig)
    assert [t.get_text() for t in fig.texts] == [plotting.SMOKE_NOTE, plotting.SYNTHETIC_NOTE]
    assert "say nothing about the method" in plotting.SMOKE_NOTE


def test_fold_picture_has_one_colour_per_side_with_the_quiz_and_marks_a_leak():
    from kdlib.data.splits import Fold, fold_table, trial_kfold
    from kdlib.data.windows import WindowSet
    n_trials, n_win = 20, 2
    n = n_trials * n_win
    ws = WindowSet(eeg=np.zeros((n, 1, 2), np.float32), eog=np.zeros((n, 1, 2), np.float32),
                   ratings=np.repeat(np.random.default_rng(0).uniform(1, 9, (n_trials, 4)), n_win, 0).astype(np.float32),
                   subject=np.full(n, "s01"), trial=np.repeat(np.arange(1, n_trials + 1), n_win), start_s=np.zeros(n),
                   fs=128.0, eeg_channels=("a",), eog_channels=("b",))
    folds = trial_kfold(ws, "valence", 4, quiz_size=0.2)
    ax = plotting.plot_folds(fold_table(ws, folds))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train", "quiz", "val", "test"]
    image = ax.get_images()[0].get_array()
    assert set(np.unique(image)) == {0, 1, 2, 3}  # every side shows up, no leak cell
    f = folds[0]
    leaky = Fold(0, np.r_[f.train, f.quiz[:1]], f.val, f.test, quiz=f.quiz)
    ax = plotting.plot_folds(fold_table(ws, [leaky]))
    assert "split across sides (leak)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert plotting.plot_folds(fold_table(ws, trial_kfold(ws, "valence", 4))).get_legend().get_texts()[1].get_text() == "val"


def test_ratings_histogram_counts_whole_trials():
    """The y axis counts trials: its ticks are whole numbers, even when few trials are drawn."""
    ratings = pd.DataFrame({"valence": [2.0, 3.5, 6.0, 7.25], "arousal": [4.0, 5.5, 5.5, 8.0]})
    ax = plotting.plot_ratings(ratings)
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_feature_pca_legend_names_classes_the_model_and_the_reference():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(20, 6))
    axes = plotting.plot_feature_pca(teacher, {"v1": teacher + 0.1, "v2": teacher - 0.1}, labels=np.r_[[0] * 10, [1] * 10])
    legend = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert legend == ["low", "high", "student (panel title)", "teacher"]
    assert [ax.get_title() for ax in axes] == ["v1", "v2"]
