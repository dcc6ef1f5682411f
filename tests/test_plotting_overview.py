"""kdlib.plotting.overview: the method's diagram has the boxes and arrows the overview notebook describes;
notebooks/00_overview.ipynb names only kdlib objects and notebook sections that exist, and quotes the
notebooks' own times."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from kdlib import models, plotting  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OVERVIEW = ROOT / "notebooks" / "00_overview.ipynb"

# The drawing the notebook's prose describes: (source, target, phase) of every arrow.
EXPECTED_ARROWS = {
    ("eeg", "eeg_branch", "forward"), ("eog", "eog_branch", "forward"), ("eog", "student_branch", "forward"),
    ("eeg_branch", "fusion", "forward"), ("eog_branch", "fusion", "forward"), ("fusion", "teacher_head", "forward"),
    ("student_branch", "student_gating", "forward"), ("student_gating", "student_head", "forward"),
    ("fusion", "adapter", "teaching"), ("student_gating", "adapter", "teaching"),
    ("teacher_head", "student_head", "teaching"),
    ("teacher_head", "lookahead", "feedback"), ("student_head", "lookahead", "feedback"),
    ("quiz", "lookahead", "feedback"), ("lookahead", "quiz_ce", "feedback"), ("quiz_ce", "teacher_head", "feedback"),
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def boxes_of(ax) -> dict[str, FancyBboxPatch]:
    return {p.get_gid(): p for p in ax.patches if isinstance(p, FancyBboxPatch)}


def texts_of(ax) -> dict[str, str]:
    return {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid() and not isinstance(t, Annotation)}


def arrows_of(ax) -> dict[str, Annotation]:
    return {t.get_gid(): t for t in ax.texts if isinstance(t, Annotation)}


def on_edge(box: FancyBboxPatch, point, tol: float = 0.15) -> bool:
    """Whether ``point`` lies on the box's outline (within ``tol`` outside it, not inside it)."""
    x0, y0, w, h = box.get_x(), box.get_y(), box.get_width(), box.get_height()
    x, y = point
    inside_outer = x0 - tol <= x <= x0 + w + tol and y0 - tol <= y <= y0 + h + tol
    inside_inner = x0 + tol < x < x0 + w - tol and y0 + tol < y < y0 + h - tol
    return inside_outer and not inside_inner


def test_overview_draws_every_box_with_its_label():
    ax = plotting.plot_method_overview()
    boxes, texts = boxes_of(ax), texts_of(ax)
    assert set(boxes) == set(plotting.OVERVIEW_BOXES)
    assert "EEG transformer" in texts["label:eeg_branch"] and "EOG transformer" in texts["label:eog_branch"]
    assert "softsign" in texts["label:fusion"] and "(1,2), (2,3)" in texts["label:fusion"]
    assert "same blocks" in texts["label:student_branch"] and "d -> 2d" in texts["label:adapter"]
    assert "θ'" in texts["label:lookahead"] and "quiz" in texts["label:quiz"]
    assert {"region:teacher", "region:student"} <= {p.get_gid() for p in ax.patches}
    for a, b in [(a, b) for a in boxes for b in boxes if a < b]:  # no two boxes overlap
        ea, eb = boxes[a].get_extents(), boxes[b].get_extents()
        assert not ea.overlaps(eb), f"boxes {a} and {b} overlap"


def test_overview_arrows_join_the_boxes_they_name_in_their_phase_colour():
    ax = plotting.plot_method_overview()
    boxes, arrows = boxes_of(ax), arrows_of(ax)
    assert set(arrows) == {f"{s}->{t}" for s, t, _ in EXPECTED_ARROWS}
    colours = {kind: matplotlib.colors.to_rgba(c) for kind, (c, _) in plotting.OVERVIEW_PHASES.items()}
    for source, target, phase in EXPECTED_ARROWS:
        arrow = arrows[f"{source}->{target}"]
        assert on_edge(boxes[source], arrow.xyann), f"{source}->{target} does not start on {source}"
        assert on_edge(boxes[target], arrow.xy), f"{source}->{target} does not end on {target}"
        assert matplotlib.colors.to_rgba(arrow.arrow_patch.get_edgecolor()) == colours[phase], (source, target)
    labels = texts_of(ax)
    assert "KD" in labels["arrowlabel:teacher_head->student_head"]
    assert "meta-gradient" in labels["arrowlabel:quiz_ce->teacher_head"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 3 and "teaching" in legend[1] and "feedback" in legend[2]


def test_overview_follows_the_depth_pairs_and_refuses_bad_ones():
    ax = plotting.plot_method_overview(models.adjacent_pairs(models.SMOKE.n_layers))
    texts = texts_of(ax)
    assert "pairs (1,2)" in texts["label:fusion"] and "(2,3)" not in texts["label:fusion"]
    assert "2 blocks" in texts["label:eeg_branch"]
    for bad in ([], [(0, 1)], [(1, 2, 3)]):
        with pytest.raises(ValueError, match="depth pairs"):
            plotting.plot_method_overview(bad)


# --- the notebook ----------------------------------------------------------------------------------

def markdown_of(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def resolve(dotted: str):
    """Import the longest module prefix of ``dotted``, then getattr the rest (raises if missing)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_kdlib_name_in_the_overview_exists():
    names = sorted(set(re.findall(r"`(kdlib(?:\.\w+)+)", markdown_of(OVERVIEW))))
    assert len(names) > 30  # the map and the table name the code they point at
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"00_overview names kdlib objects that do not exist: {missing}"


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in markdown_of(path).splitlines() if line.startswith("#")]


def test_every_notebook_section_the_overview_cites_exists():
    """``NN §k`` in the map names section k of notebook NN (its heading starts with ``k ·`` or ``k``)."""
    cited = set(re.findall(r"\b(0[1-7]) §\s?(\d+(?:\.\d+)?)", markdown_of(OVERVIEW)))
    assert len(cited) > 15
    notebooks = {p.name[:2]: p for p in (ROOT / "notebooks").glob("0[1-7]_*.ipynb")}
    missing = [f"{nb} §{k}" for nb, k in sorted(cited)
               if not any(re.match(rf"{re.escape(k)}(\s|·|$)", h) for h in headings(notebooks[nb]))]
    assert not missing, f"00_overview cites sections that its notebooks do not have (renumbered?): {missing}"


def test_the_overview_quotes_each_notebooks_own_time_line():
    """The order-and-time table copies every notebook's **Time** line: it fails when one of them changes."""
    text = markdown_of(OVERVIEW)
    for path in sorted((ROOT / "notebooks").glob("0[1-7]_*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[1].source
        line = first[first.find("**Time**"):] if "**Time**" in first else ""
        smoke = re.search(r"smoke ≈ ([^(,]+?)\s*(?:\(|,)", line)
        assert smoke, f"{path.name}: no 'smoke ≈ …' in its **Time** line"
        row = next((r for r in text.splitlines() if r.startswith(f"| {path.stem[:2]} ")), "")
        assert f"≈ {smoke.group(1)}" in row, (
            f"00_overview's time table says {row!r} for {path.name}, whose own line says smoke ≈ {smoke.group(1)}")
