"""kdlib.plotting.alignment (notebook 03's KD-loss curves and mapped-feature PCA panels), and the fixes that
notebooks 03 and 05 needed in kdlib.plotting.core's shared plots (whole-epoch ticks, legends, axis names)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kdlib import plotting  # noqa: E402


def test_kd_curves_draw_the_given_losses_and_their_division_by_t_squared():
    gap = np.linspace(-6, 6, 13)
    curves = {1.0: (gap - 2) ** 2, 4.0: 3 * (gap - 2) ** 2}
    ax = plotting.plot_kd_curves(gap, curves, teacher_gap=2.0)
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(gap)]
    solid = [line.get_ydata() for line in lines if line.get_linestyle() == "-"]
    dashed = [line.get_ydata() for line in lines if line.get_linestyle() == "--"]
    np.testing.assert_allclose(solid[1], curves[4.0])  # as computed: a change to kd_loss shows
    np.testing.assert_allclose(dashed[1], curves[4.0] / 16)
    np.testing.assert_allclose(dashed[0], solid[0])  # T = 1: the two coincide
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T = 1", "T = 4", "÷ $T^2$"]
    assert ax.get_xlabel().startswith("student logit gap") and ax.get_ylabel()
    plt.close("all")


def test_r_squared():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 4)) + 5.0
    assert plotting.r_squared(t, t) == 1.0
    assert plotting.r_squared(np.broadcast_to(t.mean(0), t.shape), t) == pytest.approx(0.0)
    assert plotting.r_squared(t + rng.normal(size=t.shape), t) < 1.0
    with pytest.raises(ValueError, match="same shape"):
        plotting.r_squared(t[:, :2], t)


def test_mapped_pca_titles_give_each_models_r_squared():
    rng = np.random.default_rng(1)
    teacher = rng.normal(size=(40, 6))
    mapped = {"good": teacher + 0.01 * rng.normal(size=teacher.shape), "bad": rng.normal(size=teacher.shape)}
    axes = plotting.plot_mapped_pca(teacher, mapped, labels=rng.integers(0, 2, 40), title="demo")
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == f"good: R² {plotting.r_squared(mapped['good'], teacher):.2f}" and titles[0].endswith("1.00")
    assert titles[1].startswith("bad: R² -")  # unrelated features: worse than the mean
    assert axes[0].figure._suptitle.get_text() == "demo"
    plt.close("all")


def test_loss_shares_have_whole_epoch_ticks():
    import pandas as pd

    history = pd.DataFrame(dict(epoch=[1, 2, 3], share_ce=[0.6, 0.7, 0.8], share_kd=[0.1] * 3, share_feat=[0.3, 0.2, 0.1]))
    ax = plotting.plot_loss_shares(history)
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close("all")


def test_ablation_and_ceiling_legends_sit_beside_the_axes_hiding_no_bar():
    """Notebook 05's ablation figure: the legend box used to cover the last methods' bars."""
    import pandas as pd

    rng = np.random.default_rng(0)
    per_subject = pd.DataFrame([dict(method=m, subject=f"s{k}", acc_trial=rng.uniform(0.4, 0.7), n_trials=40,
                                     majority_trial=0.5) for m in ("majority", "scratch", "v3") for k in range(4)])
    summary = pd.DataFrame([dict(task="valence", label_ceiling_mean=0.9, eeg_ceiling_mean=0.7, eog_ceiling_mean=0.75)])
    fig, ax = plt.subplots()
    plotting.plot_ablation(per_subject, ax=ax)
    plotting.mark_ceilings(ax, summary, "valence")
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the axes, not over the bars
    assert "EOG ceiling 75 %" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_contrasts_axis_names_the_metric_in_words():
    import pandas as pd

    table = pd.DataFrame([dict(task="valence", metric="acc_trial", contrast="V1 − scratch", mean_diff=0.04,
                               ci_low=0.01, ci_high=0.07, p_holm=0.03)])
    ax = plotting.plot_contrasts(table)
    assert ax.get_xlabel().startswith("difference in trial accuracy")  # not the column name 'acc trial'
    plt.close("all")
