"""Graded exercises: the checks the notebooks' check cells call, and the two course editions.

The convention follows nbgrader's markup (https://nbgrader.readthedocs.io): in the source notebooks
(``notebooks/``, which are the instructor's copy) an exercise is

1. a markdown cell tagged ``exercise`` (``### Exercise 2 · title``, the task, a question);
2. a code cell tagged ``solution`` that defines one function; its body sits between the lines
   ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The student edition replaces that region with
   nbgrader's stub, ``# YOUR CODE HERE`` / ``raise NotImplementedError()``;
3. a code cell tagged ``check`` that calls one check of this package on that function, e.g.
   ``ex03.check_kd_loss(kd_loss)``;
4. optionally a markdown cell tagged ``instructor`` (answers, what to look for), dropped from the
   student edition.

Solution and check cells are self-contained (they import what they use), so each exercise can be
run, and graded, on its own. A check builds its own small, seeded inputs, compares the student's
function with kdlib's reference on them, and raises :class:`CheckFailed` (an ``AssertionError``)
with one line saying what is wrong; an untouched stub fails with "not done yet". Every check is
registered under its exercise's id (``"03.2"``) by :func:`check`, so the editions' builder
(:mod:`kdlib.course.editions`) and the tests can confirm that every exercise has a check that
passes on the solution and fails on the stub.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["CheckFailed", "check", "registered_checks", "expect", "paired_by_fold"]

_REGISTRY: dict[str, Callable[..., Any]] = {}


class CheckFailed(AssertionError):
    """An exercise's check did not pass; the message names the exercise and what is wrong."""


def check(exercise_id: str, title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a check function under an exercise id (``"NN.k"``: notebook NN, exercise k).

    The wrapped check turns an unfinished stub (``NotImplementedError``) into
    ``CheckFailed("exercise NN.k (title) is not done yet ...")``, prefixes every other
    ``CheckFailed`` with the exercise id, and prints one line when the check passes.

    Parameters
    ----------
    exercise_id : str
        ``"NN.k"``, unique across the course.
    title : str
        A few words naming the exercise, shown in messages.

    Returns
    -------
    callable
        The decorator.
    """
    notebook, _, number = exercise_id.partition(".")
    if not (len(notebook) == 2 and notebook.isdigit() and number.isdigit()):
        raise ValueError(f"exercise id {exercise_id!r}: expected 'NN.k', e.g. '03.2'")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        known = _REGISTRY.get(exercise_id)
        if known is not None and known.__qualname__ != fn.__qualname__:  # a reload may re-register
            raise ValueError(f"exercise id {exercise_id!r} is registered twice "
                             f"({known.__module__}.{known.__qualname__} and {fn.__module__}.{fn.__qualname__})")
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            label = f"exercise {exercise_id} ({title})"
            try:
                result = fn(*args, **kwargs)
            except NotImplementedError as exc:
                raise CheckFailed(f"{label} is not done yet: the function still raises "
                                  f"NotImplementedError{': ' + str(exc) if str(exc) else ''}") from None
            except CheckFailed as exc:
                raise CheckFailed(f"{label}: {exc}") from None
            print(f"✓ {label}: passed")
            return result

        wrapper.exercise_id = exercise_id
        wrapper.title = title
        _REGISTRY[exercise_id] = wrapper
        return wrapper

    return decorate


def expect(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds.

    Parameters
    ----------
    condition : bool
        What the check requires.
    message : str
        One line for the student: what was expected and what came out.
    """
    if not condition:
        raise CheckFailed(message)


def registered_checks() -> dict[str, Callable[..., Any]]:
    """Every check of the course by exercise id, after importing all ``kdlib.course.exNN`` modules.

    Returns
    -------
    dict of str to callable
        Exercise id -> check, sorted by id.
    """
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("ex") and module.name[2:].isdigit():
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def paired_by_fold(table, a: str, b: str, metric: str):
    """Model ``a``'s ``metric`` minus model ``b``'s, fold by fold: the reference of checks 02.1 and 03.4.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (fold, model), with the columns ``fold``, ``model`` and ``metric``; any row order.
    a, b : str
        The models compared.
    metric : str
        The score column.

    Returns
    -------
    pandas.Series
        Indexed by fold, only the folds both models have.
    """
    wide = table.pivot(index="fold", columns="model", values=metric)  # (folds, models)
    return (wide[a] - wide[b]).dropna()
