"""The notebooks call kdlib instead of copying it: their parameters keep their meaning, their training
recipe is a named preset, and a fold's scaled windows come from ``kdlib.data.splits.fold_windows``.

Read from the notebook sources with :mod:`ast` (nothing is executed), so these tests are quick.
"""

import ast
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from kdlib import notebooks, train

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob(notebooks.NOTEBOOK_GLOB))


def code_cells(path):
    """(cell id, source) of every code cell after the one tagged ``parameters``."""
    cells = nbformat.read(path, as_version=4).cells
    start = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return [(c.get("id"), c.source) for c in cells[start + 1:] if c.cell_type == "code"]


class _Assigned(ast.NodeVisitor):
    """Names a cell binds at the notebook's top level (function and class bodies are their own scopes)."""

    def __init__(self):
        self.names = []

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Store):
            self.names.append((node.id, node.lineno))

    def visit_FunctionDef(self, node):  # a function's parameters and locals are not the notebook's
        pass

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def visit_ListComp(self, node):  # a comprehension's variable is its own
        pass

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp


def assigned_names(source):
    visitor = _Assigned()
    visitor.visit(ast.parse(source))
    return visitor.names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_overwrites_a_parameter(path):
    """A derived value gets a name of its own: a parameter keeps what papermill (or the reader) set."""
    params = set(notebooks.notebook_parameters(path))
    bad = [f"cell {cid} line {line}: {name}" for cid, source in code_cells(path)
           for name, line in assigned_names(source) if name in params]
    assert not bad, f"{path.name}: parameters reassigned after the parameters cell (give the derived value a new name): {bad}"


def test_assigned_names_sees_tuples_loops_and_skips_functions():
    source = "A, (B, C) = 1, (2, 3)\nfor D in []:\n    E += 1\ndef f(F):\n    G = F\n[H for H in []]\nwith open(x) as I: pass"
    assert [n for n, _ in assigned_names(source)] == ["A", "B", "C", "D", "E", "I"]


@pytest.mark.parametrize("seed", [0, 3])
def test_notebook_presets_are_the_recipe_the_notebooks_wrote_out(seed):
    """train.NOTEBOOK(_SMOKE) equal the TrainConfig that notebooks 03, 04 and 06 spelled out before they
    had a name (so the notebooks' numbers are those they recorded)."""
    for smoke in (True, False):
        written_out = train.TrainConfig(epochs=3 if smoke else 30, batch_size=32 if smoke else 64,
                                        warmup_epochs=0.0 if smoke else 1.0, patience=None if smoke else 6,
                                        seed=seed, num_threads=1, progress=False)
        assert replace(train.NOTEBOOK_SMOKE if smoke else train.NOTEBOOK, seed=seed) == written_out
    assert replace(train.NOTEBOOK_SMOKE, epochs=2, num_threads=None) == train.SMOKE  # SMOKE, 3 epochs, 1 thread


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_take_their_training_recipe_from_a_preset(path):
    code = "\n".join(source for _, source in code_cells(path))
    assert "TrainConfig(" not in code, f"{path.name}: use a preset of kdlib.train (NOTEBOOK, NOTEBOOK_SMOKE, SMOKE ...)"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.name.startswith("01_")], ids=lambda p: p.stem)
def test_folds_are_scaled_by_fold_windows(path):
    """Notebook 01 teaches ChannelScaler; after it, a fold's sides come from fold_windows (what the protocol uses)."""
    code = "\n".join(source for _, source in code_cells(path))
    assert "ChannelScaler.fit(" not in code, f"{path.name}: scale a fold with kdlib.data.splits.fold_windows(ws, fold)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_take_gates_from_the_forward_output(path):
    """Gates come from what forward returned (``model.gate_maps(out)``), not from state kept on the module."""
    code = "\n".join(source for _, source in code_cells(path))
    assert ".last_gates(" not in code, f"{path.name}: use model.gate_maps(out) on the forward pass's output"


MAX_CODE_LINES = 15  # DESIGN.md: notebook cells of about 15 lines at most; drawing code lives in kdlib.plotting
MAX_MARKDOWN_LINES = 30  # a screenful of prose; longer text is split into cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_short(path):
    """Every code cell has at most 15 lines and every markdown cell at most 30 (blank edges not counted)."""
    long = [f"cell {i} ({c.get('id')}, {c.cell_type}): {n} lines"
            for i, c in enumerate(nbformat.read(path, as_version=4).cells)
            if (n := len(c.source.strip().splitlines())) > (MAX_CODE_LINES if c.cell_type == "code" else MAX_MARKDOWN_LINES)]
    assert not long, f"{path.name} has long cells:\n" + "\n".join(long)
