"""The student edition, run top to bottom in smoke mode: only its check cells fail, each "not done yet".

Marked ``notebooks`` (it executes all eight notebooks, about 3 minutes on 2 cores), so ``make test``
leaves it out: there, every exercise is verified on its own (tests/test_course.py) and the instructor
edition runs in smoke mode. Run it with ``.venv/bin/pytest tests/test_course_student_run.py -m notebooks``.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from kdlib.course import editions

pytestmark = pytest.mark.notebooks


def _run_smoke(path):
    """Execute a notebook with ``SMOKE = True`` injected after its parameters cell, errors kept as outputs."""
    nb = nbformat.read(str(path), as_version=4)
    i = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell("SMOKE = True"))
    NotebookClient(nb, kernel_name="kdlib", allow_errors=True, timeout=600,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    return editions.build_editions(out_dir=tmp_path_factory.mktemp("course"))["student"]


@pytest.mark.parametrize("number", ["00", "01", "02", "03", "04", "05", "06", "07"])
def test_only_the_checks_fail_and_each_as_not_done_yet(student_edition, number):
    path = next(p for p in student_edition if p.name.startswith(number))
    nb = _run_smoke(path)
    failed = {k: o for k, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"}
    checks = {k for k, c in enumerate(nb.cells) if "check" in c.metadata.get("tags", [])}
    assert set(failed) == checks, {k: (o.ename, o.evalue[:100]) for k, o in failed.items() if k not in checks}
    assert all(o.ename == "CheckFailed" and "not done yet" in o.evalue for o in failed.values())
