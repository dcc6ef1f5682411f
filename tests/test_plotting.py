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
