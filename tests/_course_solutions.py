"""Helpers of tests/test_course_ex06.py and test_course_ex07.py: a notebook's solution and stub for an exercise.

The solution cell is the ``solution``-tagged code cell right after the ``exercise``-tagged markdown
cell whose heading is ``### Exercise k · ...``; its stub is that cell with the region between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced by nbgrader's ``raise NotImplementedError()``
(what the student edition holds). Both are executed in a fresh namespace, as the student edition's
check does.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n?", re.S | re.M)


def solution_source(notebook: str, exercise_id: str) -> str:
    """The source of exercise ``NN.k``'s solution cell in ``notebooks/<notebook>``."""
    number = int(exercise_id.split(".")[1])
    cells = nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
    heads = [i for i, c in enumerate(cells) if "exercise" in c.metadata.get("tags", [])
             and re.match(rf"### Exercise {number} ·", c.source)]
    assert len(heads) == 1, f"{notebook}: expected one '### Exercise {number} ·' cell, found {len(heads)}"
    cell = cells[heads[0] + 1]
    assert cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []), \
        f"{notebook}: the cell after exercise {number}'s task is not its solution"
    return cell.source


def stub_source(source: str) -> str:
    """The student edition's stub of a solution cell."""
    stub, n = _REGION.subn(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()\n", source)
    assert n == 1, "the solution cell has no single BEGIN/END SOLUTION region"
    return stub


def function_from(source: str, name: str):
    """Execute ``source`` in a fresh namespace and return its function ``name``."""
    namespace: dict = {}
    exec(compile(source, f"<solution {name}>", "exec"), namespace)  # noqa: S102 (the repository's own notebook)
    return namespace[name]
