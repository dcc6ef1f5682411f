"""The method in one diagram: teacher branches, fusion, aligned student, teaching and feedback phases.

Introduced in ``notebooks/00_overview.ipynb``.

:func:`plot_method_overview` draws Zhang & Lu's method as kdlib reads it, with boxes and arrows
(matplotlib patches), each tagged with the paper's section:

* the teacher (section 3.1): an EEG and an EOG transformer (3.1.1, modal heterogeneity) and the
  depth-gated fusion of their depths (3.1.2, interactivity), then a head;
* the EOG-only student (3.2): the same blocks, gating across its own depths, a head, and the
  adapter that makes its ``d``-wide feature comparable with the teacher's ``2d``-wide one;
* the teaching phase (3.3.1): teacher -> student, Hinton KD on the logits and feature KD;
* the feedback phase (3.3.2): a look-ahead copy of the student is scored on quiz trials and the
  meta-gradient of that score updates the teacher's fusion and head.

The drawing is data, not pixels: every box is a ``FancyBboxPatch`` whose ``gid`` is its key in
:data:`OVERVIEW_BOXES`, its label a ``Text`` with gid ``"label:<key>"``, and every arrow an
``Annotation`` with gid ``"<source>-><target>"`` from the edge of one box to the edge of the other
(``.xyann`` the tail, ``.xy`` the head), coloured by its phase (:data:`OVERVIEW_PHASES`). The tests
read the figure back through these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = ["OVERVIEW_PHASES", "OVERVIEW_BOXES", "plot_method_overview"]

#: Arrow kinds -> (colour, legend entry).
OVERVIEW_PHASES: dict[str, tuple[str, str]] = {
    "forward": ("0.35", "forward pass (windows -> features -> logits)"),
    "teaching": ("#1f618d", "teaching phase, §3.3.1: teacher -> student, every step"),
    "feedback": ("#b03a2e", "feedback phase, §3.3.2: student -> teacher, every k steps (V3)"),
}

#: Box key -> role (colour group). The labels are built by :func:`plot_method_overview`.
OVERVIEW_BOXES: dict[str, str] = {
    "eeg": "input", "eog": "input", "quiz": "input",
    "eeg_branch": "teacher", "eog_branch": "teacher", "fusion": "teacher", "teacher_head": "teacher",
    "student_branch": "student", "student_gating": "student", "student_head": "student",
    "adapter": "student", "lookahead": "feedback", "quiz_ce": "feedback",
}

_ROLE_COLOURS = {"input": "#e8e8e8", "teacher": "#f4c7a1", "student": "#a9cce3", "feedback": "#f5b7b1"}


class _Box(NamedTuple):
    x: float  # centre
    y: float
    w: float
    h: float
    label: str


class _Arrow(NamedTuple):
    src: str
    dst: str
    kind: str  # a key of OVERVIEW_PHASES
    label: str = ""
    rad: float = 0.0  # curvature (matplotlib's arc3)
    at: tuple[float, float] = (0.0, 0.0)  # label position relative to the arrow's midpoint


def _pairs_text(pairs: Sequence[tuple[int, int]]) -> tuple[int, str]:
    """Depths the encoders need and ``"(1,2), (2,3)"``; bad pairs raise ``ValueError``."""
    pairs = [tuple(p) for p in pairs]
    if not pairs or any(len(p) != 2 or min(p) < 1 or int(p[0]) != p[0] or int(p[1]) != p[1] for p in pairs):
        raise ValueError(f"pairs must be one or more (i, j) depth pairs, 1-based, got {pairs}")
    return int(max(max(p) for p in pairs)), ", ".join(f"({i},{j})" for i, j in pairs)


def _layout(pairs: Sequence[tuple[int, int]]) -> tuple[dict[str, _Box], list[_Arrow]]:
    """Where every box sits (axes units: x 0-17, y 0.5-12.2) and which arrows join them."""
    depths, pair_text = _pairs_text(pairs)
    blocks = f"tokeniser + {depths} block{'s' if depths > 1 else ''}"
    boxes = {
        "eeg": _Box(1.2, 8.7, 1.9, 1.0, "EEG window\n(B, 32, T)"),
        "eog": _Box(1.2, 4.6, 1.9, 1.0, "EOG window\n(B, 2, T)"),
        "eeg_branch": _Box(4.7, 8.7, 3.1, 1.0, f"EEG transformer\n{blocks}"),
        "eog_branch": _Box(4.7, 6.7, 3.1, 1.0, f"EOG transformer\n{blocks}"),
        "fusion": _Box(8.6, 7.7, 3.7, 1.9, "depth-gated fusion\n[EEG ; EOG] per depth (2d)\n"
                                           f"softsign gates, pairs {pair_text}"),
        "teacher_head": _Box(11.9, 7.7, 2.2, 1.0, "teacher head\nmean pool, logits"),
        "adapter": _Box(8.6, 4.6, 2.4, 0.9, "adapter d -> 2d\n(training only)"),
        "student_branch": _Box(4.7, 2.0, 3.1, 1.0, "EOG transformer\nsame blocks, own weights"),
        "student_gating": _Box(8.6, 2.0, 3.1, 1.0, "depth gating\nits own depths (d)"),
        "student_head": _Box(11.9, 2.0, 2.2, 1.0, "student head\nmean pool, logits"),
        "lookahead": _Box(15.3, 4.6, 2.9, 1.0, "look-ahead student\nθ' = θ − η∇θ L_student"),
        "quiz_ce": _Box(15.3, 7.7, 2.9, 1.0, "CE of θ' on the\nquiz batch (× λ)"),
        "quiz": _Box(15.3, 2.0, 2.9, 1.0, "quiz trials\n(nobody is taught on)"),
    }
    arrows = [
        _Arrow("eeg", "eeg_branch", "forward"),
        _Arrow("eog", "eog_branch", "forward"),
        _Arrow("eog", "student_branch", "forward", "EOG only", at=(-0.55, -0.1)),
        _Arrow("eeg_branch", "fusion", "forward"),
        _Arrow("eog_branch", "fusion", "forward"),
        _Arrow("fusion", "teacher_head", "forward"),
        _Arrow("student_branch", "student_gating", "forward"),
        _Arrow("student_gating", "student_head", "forward"),
        _Arrow("fusion", "adapter", "teaching", "feature KD: β · MSE\nof standardised tokens", at=(-1.75, 0.0)),
        _Arrow("student_gating", "adapter", "teaching", "student's feature (d)", at=(-1.3, 0.0)),
        _Arrow("teacher_head", "student_head", "teaching", "Hinton KD:\nα · T² · KL", at=(0.75, 0.0)),
        _Arrow("teacher_head", "lookahead", "feedback", "targets on x\n(with grad.)", at=(0.85, 0.2)),
        _Arrow("student_head", "lookahead", "feedback", "copy θ", at=(0.5, -0.3)),
        _Arrow("quiz", "lookahead", "feedback", "x_f, y_f", at=(0.45, 0.0)),
        _Arrow("lookahead", "quiz_ce", "feedback"),
        _Arrow("quiz_ce", "teacher_head", "feedback", "meta-gradient ∇φ: Adam step\non the fusion + head",
               at=(0.0, 0.95)),
    ]
    return boxes, arrows


def _edge_point(box: _Box, toward: tuple[float, float], gap: float = 0.08) -> tuple[float, float]:
    """Where the ray from ``box``'s centre toward a point leaves the box (plus a small gap)."""
    dx, dy = toward[0] - box.x, toward[1] - box.y
    scale = min(box.w / 2 / abs(dx) if dx else np.inf, box.h / 2 / abs(dy) if dy else np.inf)
    norm = float(np.hypot(dx, dy))
    return box.x + dx * scale + gap * dx / norm, box.y + dy * scale + gap * dy / norm


def _draw_box(ax, key: str, box: _Box) -> None:
    ax.add_patch(FancyBboxPatch((box.x - box.w / 2, box.y - box.h / 2), box.w, box.h, boxstyle="round,pad=0.04",
                                fc=_ROLE_COLOURS[OVERVIEW_BOXES[key]], ec="0.25", lw=1.1, gid=key, zorder=2))
    ax.text(box.x, box.y, box.label, ha="center", va="center", fontsize=8, gid=f"label:{key}", zorder=3)


def _draw_arrow(ax, arrow: _Arrow, boxes: dict[str, _Box]) -> None:
    src, dst = boxes[arrow.src], boxes[arrow.dst]
    tail, head = _edge_point(src, (dst.x, dst.y)), _edge_point(dst, (src.x, src.y))
    colour = OVERVIEW_PHASES[arrow.kind][0]
    ax.annotate("", xy=head, xytext=tail, gid=f"{arrow.src}->{arrow.dst}", zorder=4,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.6 if arrow.kind != "forward" else 1.1,
                                mutation_scale=13, shrinkA=0, shrinkB=0,
                                linestyle="--" if arrow.kind == "feedback" else "-",
                                connectionstyle=f"arc3,rad={arrow.rad}"))
    if arrow.label:
        mid = ((tail[0] + head[0]) / 2 + arrow.at[0], (tail[1] + head[1]) / 2 + arrow.at[1])
        ax.text(*mid, arrow.label, ha="center", va="center", fontsize=7.5, color=colour,
                gid=f"arrowlabel:{arrow.src}->{arrow.dst}", zorder=5)


def _draw_regions(ax) -> None:
    """The two models as shaded regions, each with its paper sections and when it is used."""
    regions = [("teacher", 2.9, 5.75, 13.2, 10.45, "#fdf2e9",
                "teacher (EEG + EOG), §3.1: trained first in every fold, on that fold's teaching trials\n"
                "§3.1.1 heterogeneity: one transformer per modality;  §3.1.2 interactivity: fusion of their depths"),
               ("student", 2.9, 0.95, 13.2, 3.15, "#eaf2f8",
                "student (EOG only), §3.2: the teacher's blocks without the EEG half; used alone at test time")]
    for name, x0, y0, x1, y1, colour, title in regions:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fc=colour, ec="0.7", lw=0.8, gid=f"region:{name}",
                               zorder=1))
        top = name == "teacher"  # the student's title goes below its boxes, clear of the arrows into them
        ax.text(x0 + 0.1, y1 - 0.12 if top else y0 + 0.1, title, ha="left", va="top" if top else "bottom",
                fontsize=7.5, color="0.3", zorder=3)


def plot_method_overview(pairs: Sequence[tuple[int, int]] = ((1, 2), (2, 3)), ax=None):
    """Draw the method: teacher branches, fusion, aligned student, teaching and feedback phases.

    Introduced in ``notebooks/00_overview.ipynb``.

    Parameters
    ----------
    pairs : sequence of (int, int)
        The fusion's depth pairs, 1-based ``(scored_by, gated)``, as
        :func:`kdlib.models.adjacent_pairs` gives them; the largest depth is the number of blocks
        the encoders are drawn with. Default: the pairs of kdlib's 3-block encoders.
    ax : matplotlib Axes, optional
        Where to draw (a new 14 x 7.2 in figure if None).

    Returns
    -------
    matplotlib Axes
        Boxes are patches with ``gid`` = their key of :data:`OVERVIEW_BOXES`; arrows are
        annotations with ``gid`` ``"<source>-><target>"``, coloured by :data:`OVERVIEW_PHASES`.
    """
    boxes, arrows = _layout(pairs)
    if ax is None:
        _, ax = plt.subplots(figsize=(14, 7.2))
    ax.set(xlim=(-0.1, 16.9), ylim=(0.5, 12.2))
    ax.set_aspect("equal")
    ax.axis("off")
    _draw_regions(ax)
    for key, box in boxes.items():
        _draw_box(ax, key, box)
    for arrow in arrows:
        _draw_arrow(ax, arrow, boxes)
    handles = [Line2D([], [], color=c, lw=1.6, ls="--" if kind == "feedback" else "-", label=text)
               for kind, (c, text) in OVERVIEW_PHASES.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False, bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Zhang & Lu's method as kdlib reads it: an EEG + EOG teacher distilled into an EOG-only student",
                 loc="left")
    return ax
