"""kdlib.plotting.feedback: notebook 04's phase diagram and toy-boundary panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from kdlib import plotting  # noqa: E402
from kdlib.plotting import feedback as fbplot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_reexported_by_the_package():
    for name in fbplot.__all__:
        assert getattr(plotting, name) is getattr(fbplot, name)


def test_phase_diagram_draws_both_phases_with_their_boxes_and_arrows():
    axes = plotting.draw_feedback_phases()
    assert len(axes) == 2
    assert "teaching" in axes[0].get_title() and "feedback" in axes[1].get_title()
    for ax, n_boxes in zip(axes, (4, 5)):
        assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == n_boxes
        assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) >= 4
    texts = " ".join(t.get_text() for t in axes[1].texts)
    assert "λ" in texts and "meta-gradient" in texts and "θ'" in texts


def test_phase_diagram_into_given_axes():
    fig, given = plt.subplots(2, 1)
    axes = plotting.draw_feedback_phases(axes=given)
    assert list(axes) == list(given) and axes[0].figure is fig


def linear(w, b=0.0):
    """A 'model' on 2-D points: the logistic probability of class 1 of w . x + b."""
    return lambda pts: 1 / (1 + np.exp(-(pts @ np.asarray(w, dtype=float) + b)))


def edge_is(collection, rgba) -> bool:
    """Whether a line collection (not a filled contour, not the scatter) is drawn in colour ``rgba``."""
    edge = np.atleast_2d(collection.get_edgecolor())
    return len(edge) == 1 and np.allclose(edge[0], rgba)


def test_toy_boundaries_one_panel_per_pair_and_the_boundaries_where_p_is_half():
    rng = np.random.default_rng(0)
    pts, y = rng.normal(size=(50, 2)), rng.integers(0, 2, 50)
    panels = [("a", linear([1, 0]), linear([0, 1])), ("b", linear([1, 1], -0.5), linear([0, 1]))]
    axes = plotting.plot_toy_boundaries(panels, pts, y, before=linear([1, 0], 0.3))
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    assert axes[0].get_ylabel() == "$x_2$"
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["teacher's boundary (p = 0.5)", "teacher before feedback", "linear student it taught"]
    x0, x1, y0, y1 = plotting.TOY_EXTENT
    assert axes[0].get_xlim() == pytest.approx((x0, x1)) and axes[0].get_ylim() == pytest.approx((y0, y1))
    # the teacher of panel a is p = sigmoid(x1): its boundary is the line x1 = 0
    teacher_lines = [c for c in axes[0].collections if edge_is(c, (0, 0, 0, 1))]
    assert len(teacher_lines) == 1
    verts = np.concatenate([p.vertices for c in teacher_lines for p in c.get_paths() if len(p.vertices)])
    assert np.abs(verts[:, 0]).max() < 0.05


def test_toy_boundaries_without_before_and_a_single_panel():
    pts, y = np.zeros((3, 2)), np.array([0, 1, 0])
    axes = plotting.plot_toy_boundaries([("only", linear([1, 0]), linear([0, 1]))], pts, y)
    assert len(axes) == 1
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "teacher before feedback" not in labels and len(labels) == 2
