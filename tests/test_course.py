"""The course's editions (kdlib.course.editions) and the check registry (kdlib.course).

The small notebooks here are written by the tests; the last tests build and verify the real course
from ``notebooks/``: every exercise's check passes on its solution and fails on its stub.
"""

from __future__ import annotations

import nbformat
import pytest

from kdlib import course
from kdlib.cli import main as cli_main
from kdlib.course import CheckFailed, editions


@course.check("99.1", "double a number")
def check_double(double):
    """Test check: ``double(x) == 2 x`` on a few integers.

    Parameters
    ----------
    double : callable
        The function under test.
    """
    for x in (0, 1, -3, 10):
        course.expect(double(x) == 2 * x, f"double({x}) gave {double(x)!r}, expected {2 * x}")


@course.check("98.1", "a check that cannot fail")
def check_nothing(fn):
    """Test check that ignores the function, the kind verify_editions must catch.

    Parameters
    ----------
    fn : callable
        Ignored.
    """


SOLUTION = "import math\n\n\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
CHECK = "from test_course import check_double\ncheck_double(double)"


def _exercise_cells(k, solution=SOLUTION, check=CHECK, note="The answer is 2x."):
    cells = [nbformat.v4.new_markdown_cell(f"### Exercise {k} · double\nWrite `double`."),
             nbformat.v4.new_code_cell(solution), nbformat.v4.new_code_cell(check)]
    for cell, tag in zip(cells, ("exercise", "solution", "check")):
        cell.metadata["tags"] = [tag]
    if note:
        cells.append(nbformat.v4.new_markdown_cell(note))
        cells[-1].metadata["tags"] = ["instructor"]
    return cells


def _notebook(folder, name, cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SMOKE = True")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), params] + cells
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def test_clear_solution_keeps_the_signature_and_indents_the_stub():
    stub = editions.clear_solution(SOLUTION)
    assert "def double(x):" in stub and '"""Twice x."""' in stub and "return 2 * x" not in stub
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in stub
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    return 1\n", "has no '### BEGIN SOLUTION'"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_clear_solution_refuses_broken_markers(source, problem):
    with pytest.raises(editions.EditionError, match=problem) as err:
        editions.clear_solution(source, "nb.ipynb, exercise 01.1")
    assert str(err.value).startswith("nb.ipynb, exercise 01.1:") and "\n" not in str(err.value)


def test_exercises_are_read_in_order_with_their_notes(tmp_path):
    path = _notebook(tmp_path, "99_demo.ipynb", _exercise_cells(1) + _exercise_cells(2, note=None))
    found = editions.exercises(path)
    assert [(e.exercise_id, e.title, e.notes) for e in found] == [("99.1", "double", 1), ("99.2", "double", 0)]
    assert "return 2 * x" in editions.solution_source(path, "99.2")
    assert "BEGIN SOLUTION" not in editions.solution_source(path, "99.2")


def test_exercise_function_is_the_solution_or_the_stub(tmp_path):
    path = _notebook(tmp_path, "99_demo.ipynb", _exercise_cells(1))
    assert editions.exercise_function(path, "99.1")(4) == 8
    with pytest.raises(NotImplementedError):
        editions.exercise_function(path, "99.1", stub=True)(4)
    two = SOLUTION + "\n\ndef helper():\n    return 1\n"
    path = _notebook(tmp_path, "98_demo.ipynb", _exercise_cells(1, solution=two))
    with pytest.raises(editions.EditionError, match="defines 2 functions"):
        editions.exercise_function(path, "98.1")


@pytest.mark.parametrize("mutate, problem", [
    (lambda cells: cells.pop(2), "needs a code cell tagged 'check'"),
    (lambda cells: cells[0].__setitem__("source", "### Exercise two\n"), "must start with"),
    (lambda cells: cells[0].__setitem__("source", "### Exercise 3 · x\n"), "numbered [3]"),
    (lambda cells: cells[0].metadata.__setitem__("tags", []), "outside an exercise"),
])
def test_exercises_refuse_a_broken_convention(tmp_path, mutate, problem):
    cells = _exercise_cells(1)
    mutate(cells)
    path = _notebook(tmp_path, "02_demo.ipynb", cells)
    with pytest.raises(editions.EditionError, match=problem.replace("[", r"\[").replace("]", r"\]")) as err:
        editions.exercises(path)
    assert "02_demo.ipynb" in str(err.value)


def test_the_editions_differ_only_in_solutions_and_notes(tmp_path):
    path = _notebook(tmp_path, "99_demo.ipynb", _exercise_cells(1))
    source = nbformat.read(str(path), as_version=4)
    source.cells[3].outputs = [nbformat.v4.new_output("stream", text="old output")]
    nbformat.write(source, str(path))
    student, instructor = (editions.edition_notebook(path, kind) for kind in ("student", "instructor"))
    assert [c.source.split("\n")[0] for c in student.cells][:2] == ["# Title", editions.STUDENT_BANNER.format(
        name="99_demo.ipynb")]
    assert not any("instructor" in c.metadata.get("tags", []) for c in student.cells)
    assert "**Instructor note.** The answer is 2x." in [c.source for c in instructor.cells]
    solution = {n: [c for c in nb.cells if "solution" in c.metadata.get("tags", [])][0]
                for n, nb in (("student", student), ("instructor", instructor))}
    assert "raise NotImplementedError()" in solution["student"].source and "return 2 * x" not in solution["student"].source
    assert solution["instructor"].source == SOLUTION
    check = [c for c in student.cells if "check" in c.metadata.get("tags", [])][0]
    assert check.outputs == [] and check.metadata["nbgrader"] == {
        "grade": True, "grade_id": "ex99-1-check", "locked": True, "schema_version": 3, "solution": False,
        "task": False, "points": 1}
    assert solution["student"].metadata["nbgrader"]["solution"] is True
    assert nbformat.read(str(path), as_version=4).cells[3].outputs  # the source is untouched
    with pytest.raises(ValueError, match="expected one of"):
        editions.edition_notebook(path, "teacher")


def test_build_writes_both_editions_and_removes_stale_ones(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _notebook(src, "99_demo.ipynb", _exercise_cells(1))
    out = tmp_path / "course"
    (out / "student").mkdir(parents=True)
    (out / "student" / "05_gone.ipynb").write_text("{}")
    written = editions.build_editions(src, out)
    assert [p.name for p in written["student"]] == ["99_demo.ipynb"] == [p.name for p in written["instructor"]]
    assert not (out / "student" / "05_gone.ipynb").exists()
    assert "| 99.1 | `99_demo.ipynb` | double | `test_course.check_double` |" in (out / "EXERCISES.md").read_text()
    for kind in ("student", "instructor"):
        nbformat.validate(nbformat.read(str(out / kind / "99_demo.ipynb"), as_version=4))


def test_verify_passes_a_sound_course_and_catches_a_check_that_cannot_fail(tmp_path):
    for name, check in (("99_demo.ipynb", CHECK), ("98_demo.ipynb", CHECK.replace("double", "nothing", 2))):
        (tmp_path / name[:2]).mkdir()
        _notebook(tmp_path / name[:2], name, _exercise_cells(1, check=check))
        editions.build_editions(tmp_path / name[:2], tmp_path / f"course{name[:2]}")
    assert editions.verify_editions(tmp_path / "course99") == []
    assert editions.verify_editions(tmp_path / "course98") == [
        "student edition, 98_demo.ipynb, exercise 98.1: the check does not fail on the stub as 'not done yet' "
        "(✓ exercise 98.1 (a check that cannot fail): passed)"]


@pytest.mark.parametrize("solution, check, problem", [
    (SOLUTION.replace("return 2 * x", "return 3 * x"), CHECK,
     "instructor edition, 99_demo.ipynb, exercise 99.1: the check does not pass on the solution "
     "(exercise 99.1 (double a number): double(1) gave 3, expected 2)"),
    (SOLUTION, "from test_course import check_double\ncheck_double(double, teacher)",
     "instructor edition, 99_demo.ipynb, exercise 99.1: NameError: name 'teacher' is not defined"),
    (SOLUTION, "from test_course import check_nothing\ncheck_nothing(double)",
     "instructor edition, 99_demo.ipynb, exercise 99.1: the check cell does not call the check registered as 99.1 "
     "(✓ exercise 98.1 (a check that cannot fail): passed)"),
    (SOLUTION, "from test_course import check_double\ncheck_double(lambda x: 2 * x)",
     "student edition, 99_demo.ipynb, exercise 99.1: the check does not fail on the stub as 'not done yet' "
     "(✓ exercise 99.1 (double a number): passed)"),
])
def test_verify_reports_broken_exercises(tmp_path, solution, check, problem):
    (tmp_path / "src").mkdir()
    _notebook(tmp_path / "src", "99_demo.ipynb", _exercise_cells(1, solution=solution, check=check))
    editions.build_editions(tmp_path / "src", tmp_path / "course")
    assert problem in editions.verify_editions(tmp_path / "course")


def test_check_turns_a_stub_into_not_done_yet_and_prefixes_failures(capsys):
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match=r"^exercise 99.1 \(double a number\) is not done yet"):
        check_double(stub)
    with pytest.raises(CheckFailed, match=r"^exercise 99.1 \(double a number\): double\(1\) gave 1, expected 2$"):
        check_double(lambda x: x)
    check_double(lambda x: x + x)
    assert capsys.readouterr().out == "✓ exercise 99.1 (double a number): passed\n"
    with pytest.raises(ValueError, match="expected 'NN.k'"):
        course.check("3.2", "bad id")
    with pytest.raises(ValueError, match="registered twice"):
        course.check("99.1", "again")(lambda fn: None)


def test_cli_course_verify_exit_status(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    _notebook(tmp_path / "src", "99_demo.ipynb", _exercise_cells(1))
    assert cli_main(["course", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "c"), "--verify"]) == 0
    assert "verified: each of the 1 checks" in capsys.readouterr().out
    bad = _exercise_cells(1, solution=SOLUTION.replace("2 * x", "x"))
    _notebook(tmp_path / "src", "99_demo.ipynb", bad)
    assert cli_main(["course", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "c"), "--verify"]) == 1
    assert "does not pass on the solution" in capsys.readouterr().err
    assert cli_main(["course", "--src", str(tmp_path / "nothing")]) == 1


def test_the_kits_course_is_sound(tmp_path):
    """The real course: every numbered notebook but the overview has exercises; each check passes on
    its solution and fails on its stub, and every registered check is used."""
    written = editions.build_editions(out_dir=tmp_path)
    counts = {p.name[:2]: len(editions.exercises(p)) for p in written["instructor"]}
    assert all(n >= 1 for number, n in counts.items() if number != "00"), counts
    assert editions.verify_editions(tmp_path) == []
