"""kdlib.plotting.alignment: notebook 03's KD-loss curves and mapped-feature PCA panels."""

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
