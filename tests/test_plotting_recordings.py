"""Notebook 01's trace and split pictures and notebook 02's teacher diagram (kdlib.plotting.recordings,
kdlib.plotting.architecture): they draw what their docstrings say."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kdlib import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("value, bar", [(7.3, 5.0), (20.0, 20.0), (0.34, 0.2), (199.0, 100.0), (1.0, 1.0)])
def test_nice_scale_is_the_largest_1_2_5_step_not_above(value, bar):
    assert plotting.nice_scale(value) == pytest.approx(bar)


def test_nice_scale_refuses_non_positive():
    with pytest.raises(ValueError, match="positive"):
        plotting.nice_scale(0.0)


def test_traces_have_a_scale_bar_per_group_the_baseline_and_the_title():
    rng = np.random.default_rng(0)
    t = np.arange(1280) / 128.0  # (T,) 10 s
    eeg = 10 * rng.standard_normal((3, len(t)))  # (C, T) µV
    eog = 300 + 100 * rng.standard_normal((2, len(t)))  # offset removed for display
    ax = plotting.plot_traces(t, {"EEG": (eeg, ["Fp1", "Fz", "Cz"]), "EOG": (eog, ["hEOG", "vEOG"])},
                              baseline_s=3.0, title="trial 1")
    texts = [x.get_text() for x in ax.texts]
    bars = [x for x in texts if "µV" in x]
    assert len(bars) == 2 and "(EEG)" in bars[0] and "(EOG)" in bars[1]
    eeg_bar, eog_bar = (float(b.split()[0]) for b in bars)
    assert eog_bar > 5 * eeg_bar  # each group its own scale
    assert "pre-trial baseline" in texts and ax.get_title() == "trial 1"
    assert [x.get_text() for x in ax.get_yticklabels()] == ["Fp1", "Fz", "Cz", "hEOG", "vEOG"]
    span = [p for p in ax.patches if p.get_width() == pytest.approx(3.0)]  # the shaded [0, 3 s]
    assert span
    traces = [line for line in ax.lines if len(line.get_ydata()) == len(t)]  # (5 traces, not the bars)
    assert len(traces) == 5  # each drawn around its own median, at its tick: the EOG offset is gone
    assert all(abs(np.median(line.get_ydata()) - tick) < 1e-6 for line, tick in zip(traces, ax.get_yticks()))


def test_test_shares_hatch_only_trials_split_across_train_and_test():
    trial = np.repeat([1, 2, 3], 4)  # (N,) 4 windows per trial
    folds = [SimpleNamespace(index=0, test=np.array([0, 1, 2, 3])),  # trial 1 wholly in test
             SimpleNamespace(index=1, test=np.array([4, 8, 9]))]  # 1/4 of trial 2, 1/2 of trial 3
    ax = plotting.plot_test_shares(trial, folds)
    shares = ax.images[0].get_array()
    np.testing.assert_allclose(shares, [[1.0, 0.0, 0.0], [0.0, 0.25, 0.5]])
    hatched = sorted((p.get_x() + 0.5, p.get_y() + 0.5) for p in ax.patches if p.get_hatch())
    assert hatched == [(1.0, 1.0), (2.0, 1.0)]  # (column, row) of the two split cells


def test_architecture_draws_every_depth_and_the_pairs_of_a_teacher():
    from kdlib.models import SMOKE, FusionTeacher

    teacher = FusionTeacher(replace(SMOKE, n_layers=3), pairs=[(1, 3)])
    ax = plotting.plot_teacher_architecture(teacher)
    texts = [t.get_text() for t in ax.texts]
    assert sum(t.startswith("depth ") for t in texts) == 2 * 3  # both branches, 3 depths each
    assert "g1: 1→3" in texts and not any(t.startswith("g2") for t in texts)
    assert "(1, 3)" in ax.get_title() and any("z3 + g1⊙z3" in t for t in texts)
    assert any(f"{SMOKE.n_tokens} tokens × d={SMOKE.d_model}" in t for t in texts)


def test_architecture_takes_plain_sizes_with_the_adjacent_pairs_by_default():
    sizes = dict(n_eeg=32, n_eog=2, n_samples=512, fs=128.0, d_model=64, n_heads=8, n_layers=4, kernel_size=32,
                 stride=8, n_tokens=61, n_classes=2)
    ax = plotting.plot_teacher_architecture(sizes)
    texts = [t.get_text() for t in ax.texts]
    assert [t for t in texts if t.startswith("g")] == ["g1: 1→2", "g2: 2→3", "g3: 3→4"]
    with pytest.raises(ValueError, match="lack"):
        plotting.plot_teacher_architecture({"n_layers": 2})
