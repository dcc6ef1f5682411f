"""The course's two editions, written from the same source notebooks (``make course``).

``build_editions()`` reads ``notebooks/NN_*.ipynb`` (the instructor's copy, see :mod:`kdlib.course`
for the cell convention) and writes, output-free:

- ``build/course/student/``: every solution region replaced by nbgrader's stub
  (``# YOUR CODE HERE`` / ``raise NotImplementedError()``), cells tagged ``instructor`` removed,
  a banner saying how to work through the exercises;
- ``build/course/instructor/``: solutions (markers kept, so the student's part stays visible) and
  instructor notes in;
- ``build/course/EXERCISES.md``: the list of exercises, with their checks.

Solution and check cells carry nbgrader's cell metadata (``solution`` / ``grade`` with a
``grade_id`` and 1 point, schema 3), so a course already graded with nbgrader can take the
instructor edition as its source. :func:`verify_editions` runs every exercise of both editions
on its own (its solution or stub cell, then its check cell, in a fresh namespace): each check must
pass on the solution and fail on the untouched stub, so no check is one that cannot fail.

Examples
--------
>>> from kdlib.course import editions
>>> written = editions.build_editions()          # doctest: +SKIP
>>> editions.verify_editions()                   # doctest: +SKIP
[]
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from kdlib import paths
from kdlib.course import CheckFailed, registered_checks
from kdlib.io import atomic_write
from kdlib.notebooks import discover_notebooks

__all__ = [
    "SOLUTION_BEGIN",
    "SOLUTION_END",
    "STUB",
    "EditionError",
    "Exercise",
    "clear_solution",
    "exercises",
    "solution_source",
    "exercise_function",
    "EDITIONS",
    "edition_notebook",
    "build_editions",
    "run_exercise",
    "verify_editions",
]

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's ClearSolutions default
HEADING = re.compile(r"^###\s+Exercise\s+(\d+)\s*[·:.\-–—]\s*(\S.*)$")
STUDENT_BANNER = (
    "> **Student edition** of `{name}`, written by `make course` from the kit's notebooks. Each exercise "
    "(section *Exercises*) has a function to complete where it says `# YOUR CODE HERE`; run the cell below "
    "it to check your answer (it says ✓ when it passes, and what is wrong when it does not)."
)
INSTRUCTOR_BANNER = (
    "> **Instructor edition** of `{name}`, written by `make course`: solutions between "
    "`### BEGIN SOLUTION` / `### END SOLUTION` (the part the student edition clears) and notes for "
    "instructors in the cells marked *Instructor note*."
)


class EditionError(ValueError):
    """A source notebook breaks the exercise convention; the message names the notebook and cell."""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of a notebook.

    Attributes
    ----------
    exercise_id : str
        ``"NN.k"``: notebook NN, exercise k.
    title : str
        From the heading ``### Exercise k · title``.
    solution : str
        Source of the solution cell (markers included).
    check : str
        Source of the check cell.
    notes : int
        How many instructor-note cells follow the check.
    """

    exercise_id: str
    title: str
    solution: str
    check: str
    notes: int


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def clear_solution(source: str, where: str = "cell") -> str:
    """The source with each ``BEGIN``/``END SOLUTION`` region replaced by nbgrader's stub.

    Parameters
    ----------
    source : str
        A solution cell's code.
    where : str
        Names the cell in error messages (``"02_fusion_teacher.ipynb, exercise 02.3"``).

    Returns
    -------
    str
        The stubbed code, the stub indented like the ``BEGIN`` marker.

    Raises
    ------
    EditionError
        No region, a marker without its partner, or nested regions.
    """
    out, inside, regions = [], False, 0
    for line in source.splitlines():
        marker = line.strip()
        if marker == SOLUTION_BEGIN:
            if inside:
                raise EditionError(f"{where}: '{SOLUTION_BEGIN}' inside another solution region")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in STUB)
            inside, regions = True, regions + 1
        elif marker == SOLUTION_END:
            if not inside:
                raise EditionError(f"{where}: '{SOLUTION_END}' without '{SOLUTION_BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise EditionError(f"{where}: '{SOLUTION_BEGIN}' is never closed by '{SOLUTION_END}'")
    if not regions:
        raise EditionError(f"{where}: the solution cell has no '{SOLUTION_BEGIN}' ... '{SOLUTION_END}' region")
    return "\n".join(out)


def _read(path: Path):
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several types for unreadable files
        raise EditionError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from None


def _exercise_at(cells, i: int, number: str, name: str, markers: bool) -> tuple[Exercise, int]:
    """The exercise whose heading cell is ``cells[i]``, and the index after its last cell."""
    heading = HEADING.match(cells[i].source.strip().splitlines()[0])
    where = f"{name}, cell {i} ({cells[i].get('id', '?')})"
    if heading is None:
        raise EditionError(f"{where}: an 'exercise' cell must start with '### Exercise k · title'")
    exercise_id = f"{number}.{heading.group(1)}"
    kinds = ["solution", "check"]
    found = []
    for offset, kind in enumerate(kinds, start=1):
        cell = cells[i + offset] if i + offset < len(cells) else None
        if cell is None or cell.cell_type != "code" or kind not in _tags(cell):
            raise EditionError(f"{where}: exercise {exercise_id} needs a code cell tagged '{kind}' "
                               f"right after its {'heading' if offset == 1 else 'solution'}")
        found.append(cell.source)
    if markers:
        clear_solution(found[0], f"{name}, exercise {exercise_id}")  # raises when the markers are wrong
    end = i + 3
    while end < len(cells) and "instructor" in _tags(cells[end]):
        end += 1
    return Exercise(exercise_id, heading.group(2).strip(), found[0], found[1], end - i - 3), end


def exercises(nb_path: str | Path, markers: bool = True) -> list[Exercise]:
    """The graded exercises of a notebook, in order.

    Parameters
    ----------
    nb_path : str or Path
        A notebook ``NN_name.ipynb``.
    markers : bool
        Require the solution markers (a source notebook or an instructor edition); False for a
        student edition, whose solutions are stubs.

    Returns
    -------
    list of Exercise
        Numbered 1, 2, ... within the notebook.

    Raises
    ------
    EditionError
        The convention is broken: a heading without its solution or check cell, markers missing,
        numbers not 1, 2, ..., or a ``solution``/``check`` cell outside an exercise.
    """
    nb_path = Path(nb_path)
    nb, number = _read(nb_path), nb_path.name[:2]
    cells, found, i, claimed = nb.cells, [], 0, set()
    while i < len(cells):
        if "exercise" in _tags(cells[i]):
            exercise, end = _exercise_at(cells, i, number, nb_path.name, markers)
            found.append(exercise)
            claimed.update(range(i, end))
            i = end
        else:
            i += 1
    stray = [i for i, c in enumerate(cells) if _tags(c) & {"solution", "check"} and i not in claimed]
    if stray:
        raise EditionError(f"{nb_path.name}: cells {stray} are tagged solution/check outside an exercise")
    numbers = [int(e.exercise_id.split(".")[1]) for e in found]
    if numbers != list(range(1, len(found) + 1)):
        raise EditionError(f"{nb_path.name}: exercises are numbered {numbers}, expected 1..{len(found)}")
    return found


def _find(nb_path: str | Path, exercise_id: str) -> Exercise:
    for exercise in exercises(nb_path):
        if exercise.exercise_id == exercise_id:
            return exercise
    raise EditionError(f"{Path(nb_path).name}: no exercise {exercise_id}")


def solution_source(nb_path: str | Path, exercise_id: str) -> str:
    """The solution cell of one exercise, markers removed (what tests feed to its check).

    Parameters
    ----------
    nb_path : str or Path
        The source notebook.
    exercise_id : str
        ``"NN.k"``.

    Returns
    -------
    str
        Runnable code that defines the exercise's function.
    """
    lines = _find(nb_path, exercise_id).solution.splitlines()
    return "\n".join(line for line in lines if line.strip() not in (SOLUTION_BEGIN, SOLUTION_END))


def exercise_function(nb_path: str | Path, exercise_id: str, stub: bool = False):
    """The function an exercise's solution cell defines, run in a fresh namespace (as its check cell is).

    Parameters
    ----------
    nb_path : str or Path
        The source notebook.
    exercise_id : str
        ``"NN.k"``.
    stub : bool
        The student edition's version (solution region replaced by the stub) instead of the solution.

    Returns
    -------
    callable
        The one function the cell defines at its top level.

    Raises
    ------
    EditionError
        No such exercise, or the cell does not define exactly one function.
    """
    source = (clear_solution(_find(nb_path, exercise_id).solution) if stub
              else solution_source(nb_path, exercise_id))
    names = [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    if len(names) != 1:
        raise EditionError(f"{Path(nb_path).name}, exercise {exercise_id}: the solution cell defines "
                           f"{len(names)} functions ({names}), expected one")
    namespace = {"__name__": "__course__"}
    exec(compile(source, f"<exercise {exercise_id}>", "exec"), namespace)
    return namespace[names[0]]


def _banner(text: str, name: str, kind: str):
    cell = nbformat.v4.new_markdown_cell(text.format(name=name))
    cell.id = f"course-{kind}-edition"
    return cell


def _grade_metadata(cell, exercise_id: str, kind: str) -> None:
    """nbgrader's cell metadata (schema 3): a solution cell, or a graded, locked check cell."""
    grade_id = f"ex{exercise_id.replace('.', '-')}-{kind}"
    cell.metadata["nbgrader"] = {"grade": kind == "check", "grade_id": grade_id, "locked": kind == "check",
                                 "schema_version": 3, "solution": kind == "solution", "task": False,
                                 **({"points": 1} if kind == "check" else {})}


def _edition(nb, name: str, student: bool):
    nb = copy.deepcopy(nb)
    number, cells, current = name[:2], [], None
    for cell in nb.cells:
        tags = _tags(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "exercise" in tags:
            current = f"{number}.{HEADING.match(cell.source.strip().splitlines()[0]).group(1)}"
        if "instructor" in tags:
            if student:
                continue
            if not cell.source.lstrip().startswith("**Instructor note"):
                cell.source = "**Instructor note.** " + cell.source
        for kind in ("solution", "check"):
            if kind in tags:
                _grade_metadata(cell, current, kind)
        if "solution" in tags and student:
            cell.source = clear_solution(cell.source, f"{name}, exercise {current}")
        cells.append(cell)
    banner = _banner(STUDENT_BANNER if student else INSTRUCTOR_BANNER, name, "student" if student else "instructor")
    nb.cells = cells[:1] + [banner] + cells[1:]
    return nb


EDITIONS = ("student", "instructor")


def edition_notebook(nb_path: str | Path, edition: str):
    """One edition of one source notebook (a new ``NotebookNode``; the file is untouched).

    Parameters
    ----------
    nb_path : str or Path
        The source notebook.
    edition : {"student", "instructor"}
        Student: solutions stubbed, instructor notes removed. Instructor: solutions and notes in.
        Both: outputs cleared, a banner after the title, nbgrader metadata on solution and check cells.

    Returns
    -------
    nbformat.NotebookNode
        The edition.
    """
    if edition not in EDITIONS:
        raise ValueError(f"edition {edition!r}: expected one of {EDITIONS}")
    exercises(nb_path)  # the convention holds, or a one-line EditionError
    return _edition(_read(Path(nb_path)), Path(nb_path).name, student=edition == "student")


def _write(nb, path: Path) -> Path:
    nbformat.validate(nb)
    with atomic_write(path, "w") as fh:
        nbformat.write(nb, fh)
    return path


def _exercise_list(sources: list[Path]) -> str:
    checks = registered_checks()
    lines = ["# Exercises of the kdlib course", "",
             "Written by `make course` (`python -m kdlib course`). Each check is a function of "
             "`kdlib.course.exNN`; `python -m kdlib course --verify` runs every exercise of both editions.", "",
             "| exercise | notebook | title | check |", "|---|---|---|---|"]
    for path in sources:
        for ex in exercises(path):
            fn = checks.get(ex.exercise_id)
            where = f"`{fn.__module__}.{fn.__name__}`" if fn else "(no registered check)"
            lines.append(f"| {ex.exercise_id} | `{path.name}` | {ex.title} | {where} |")
    return "\n".join(lines) + "\n"


def build_editions(src_dir: str | Path | None = None, out_dir: str | Path | None = None,
                   names: Iterable[str] | None = None) -> dict[str, list[Path]]:
    """Write the student and instructor editions of the numbered notebooks.

    Parameters
    ----------
    src_dir : str or Path, optional
        The source notebooks; default ``notebooks/``.
    out_dir : str or Path, optional
        Default ``build/course``; ``student/`` and ``instructor/`` are written below it (notebooks
        of an earlier build that no longer have a source are removed) and ``EXERCISES.md`` beside them.
    names : iterable of str, optional
        Only these notebooks (``"03"``, ``"03_student_alignment"`` ...).

    Returns
    -------
    dict
        ``{"student": [paths], "instructor": [paths]}``.

    Raises
    ------
    EditionError
        A notebook breaks the convention (checked for every notebook before anything is written).
    """
    sources = discover_notebooks(names, paths.resolve(src_dir, paths.notebooks_dir()))
    out = paths.resolve(out_dir, paths.build_dir() / "course")
    editions = {kind: [edition_notebook(p, kind) for p in sources] for kind in EDITIONS}
    written = {}
    for kind, notebooks in editions.items():
        folder = out / kind
        if names is None and folder.is_dir():
            for stale in set(folder.glob("[0-9][0-9]_*.ipynb")) - {folder / p.name for p in sources}:
                stale.unlink()
        written[kind] = [_write(nb, folder / p.name) for nb, p in zip(notebooks, sources)]
    with atomic_write(out / "EXERCISES.md", "w") as fh:
        fh.write(_exercise_list(sources))
    return written


def run_exercise(solution: str, check: str) -> tuple[bool, str]:
    """Run one exercise on its own: its solution (or stub) cell, then its check cell, in a fresh namespace.

    Parameters
    ----------
    solution : str
        The solution or stub cell's code.
    check : str
        The check cell's code.

    Returns
    -------
    tuple of (bool, str)
        ``(True, printed output)`` when the check passes; ``(False, the CheckFailed message)`` when it
        fails. Any other exception (a broken cell, a check that needs notebook state) propagates.
    """
    namespace = {"__name__": "__course__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(solution, "<solution cell>", "exec"), namespace)
        try:
            exec(compile(check, "<check cell>", "exec"), namespace)
        except CheckFailed as failed:
            return False, str(failed)
    return True, printed.getvalue()


def _verify_one(path: Path, kind: str) -> list[str]:
    problems = []
    for ex in exercises(path, markers=kind == "instructor"):
        where = f"{kind} edition, {path.name}, exercise {ex.exercise_id}"
        if kind == "student" and STUB[1] not in ex.solution:
            problems.append(f"{where}: the solution cell has no stub ({STUB[1]})")
            continue
        try:
            passed, message = run_exercise(ex.solution, ex.check)
        except Exception as exc:  # noqa: BLE001 - any error is a broken exercise, reported with its id
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
            continue
        if kind == "instructor" and not passed:
            problems.append(f"{where}: the check does not pass on the solution ({message.strip()})")
        elif kind == "instructor" and f"✓ exercise {ex.exercise_id} " not in message:
            problems.append(f"{where}: the check cell does not call the check registered as {ex.exercise_id} "
                            f"({message.strip() or 'it printed nothing'})")
        if kind == "student" and (passed or "not done yet" not in message):
            problems.append(f"{where}: the check does not fail on the stub as 'not done yet' "
                            f"({message.strip() or 'it passed'})")
    return problems


def verify_editions(course_dir: str | Path | None = None) -> list[str]:
    """Run every exercise of the written editions on its own: checks pass on solutions, fail on stubs.

    Each exercise of ``instructor/`` must pass its check (which must be the check registered under
    its id) and each of ``student/`` must fail it as "not done yet"; both editions must hold the
    same notebooks and exercises, and every registered check of those notebooks must be used.

    Parameters
    ----------
    course_dir : str or Path, optional
        What :func:`build_editions` wrote; default ``build/course``.

    Returns
    -------
    list of str
        One line per problem; empty when the course is sound.
    """
    out = paths.resolve(course_dir, paths.build_dir() / "course")
    found = {kind: discover_notebooks(None, out / kind) for kind in ("instructor", "student")}
    names = {kind: [p.name for p in notebooks] for kind, notebooks in found.items()}
    if names["instructor"] != names["student"]:
        return [f"{out}: the editions hold different notebooks ({names})"]
    problems, used = [], {}
    for kind, notebooks in found.items():
        for path in notebooks:
            used.setdefault(kind, []).extend(ex.exercise_id for ex in exercises(path, kind == "instructor"))
            problems += _verify_one(path, kind)
    if used.get("instructor", []) != used.get("student", []):
        problems.append(f"{out}: the editions hold different exercises ({used})")
    numbers = {name[:2] for name in names["instructor"]}
    problems += [f"check {i} is registered but no exercise calls it"
                 for i in registered_checks() if i not in used.get("instructor", []) and i[:2] in numbers]
    return problems
