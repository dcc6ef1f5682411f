"""Notebook 07's graded exercises (kdlib.course.ex07): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kdlib import sweep
from kdlib.course import CheckFailed, ex07
from kdlib.course.editions import exercise_function, exercises
from kdlib.data import synthetic

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "07_when_does_distillation_help.ipynb"
EXERCISES = {  # id -> (function name, check)
    "07.1": ("path_free_grid", ex07.check_path_free_grid),
    "07.2": ("kd_share", ex07.check_kd_share),
    "07.3": ("resume_plan", ex07.check_resume_plan),
}


def solution(exercise_id):
    """The function the notebook's solution cell defines, run in a fresh namespace as the editions do."""
    return exercise_function(NOTEBOOK, exercise_id)


def test_the_notebook_holds_these_exercises():
    assert [ex.exercise_id for ex in exercises(NOTEBOOK)] == sorted(EXERCISES)


def _grid(centre, knobs):
    return lambda values, protocol: sweep.SweepGrid(synth=centre, knobs=knobs(values), protocol=protocol)


WRONG_GRID = {
    "default centre (path 0.5)": _grid(synthetic.DEFAULT, lambda v: (("rating_noise_sd", tuple(v)),)),
    "privileged centre": _grid(synthetic.PRESETS["privileged"], lambda v: (("rating_noise_sd", tuple(v)),)),
    "the path as a second knob": _grid(synthetic.PRESETS["no_path"],
                                       lambda v: (("rating_noise_sd", tuple(v)), ("eeg_to_eog", (0.0,)))),
    "the wrong knob": _grid(synthetic.PRESETS["no_path"], lambda v: (("eeg_to_eog", tuple(v)),)),
    "another protocol": lambda values, protocol: sweep.SweepGrid(
        synth=synthetic.PRESETS["no_path"], knobs=(("rating_noise_sd", tuple(values)),),
        protocol=sweep.SWEEP_PRESETS["full"].protocol),
}


def _share(h, alpha, beta, ce_weight=lambda a: 1.0, use_alpha=True, fill=True):
    kd = (alpha if use_alpha else 1.0) * h["kd"].to_numpy()
    feat = h["feat"].to_numpy()
    feat = beta * (np.nan_to_num(feat) if fill else feat)
    return kd / (ce_weight(alpha) * h["ce"].to_numpy() + kd + feat)


WRONG_SHARE = {
    "alpha left out": lambda h, a, b: _share(h, a, b, use_alpha=False),
    "(1 - alpha) CE": lambda h, a, b: _share(h, a, b, ce_weight=lambda a: 1 - a),
    "NaN feature term": lambda h, a, b: _share(h, a, b, fill=False),
    "CE share": lambda h, a, b: 1 - _share(h, a, b),
}


def _plan(grid, out, finished=lambda folder: (folder / sweep.DONE_FILE).is_file(), order=list):
    keys = [p.key for p in sweep.grid_points(grid)]
    done = {k: finished(Path(out) / "points" / k) for k in keys}
    return order([k for k in keys if not done[k]]), order([k for k in keys if done[k]])


WRONG_PLAN = {
    "a folder is finished": lambda g, o: _plan(g, o, finished=lambda f: f.is_dir()),
    "keys sorted": lambda g, o: _plan(g, o, order=sorted),
    "the old grid's points": lambda g, o: _plan(sweep.SWEEP_PRESETS["smoke"], o),
    "everything is trained": lambda g, o: ([p.key for p in sweep.grid_points(g)], []),
}


@pytest.mark.parametrize("check, wrong", [(ex07.check_path_free_grid, f) for f in WRONG_GRID.values()]
                         + [(ex07.check_kd_share, f) for f in WRONG_SHARE.values()]
                         + [(ex07.check_resume_plan, f) for f in WRONG_PLAN.values()],
                         ids=[f"grid-{k}" for k in WRONG_GRID] + [f"share-{k}" for k in WRONG_SHARE]
                         + [f"plan-{k}" for k in WRONG_PLAN])
def test_wrong_answers_fail(check, wrong, capsys):
    with pytest.raises(CheckFailed, match=r"^exercise 07\.\d \("):
        check(wrong)
    assert "✓" not in capsys.readouterr().out


def test_the_helpers_of_the_wrong_answers_are_right_when_unchanged():
    """Each wrong answer above is one mistake away from a right one: the unchanged helpers pass."""
    ex07.check_kd_share(_share)
    ex07.check_resume_plan(_plan)


def test_checks_are_registered():
    from kdlib.course import registered_checks

    checks = registered_checks()
    for exercise_id, (_, check) in EXERCISES.items():
        assert checks[exercise_id] is check


def test_a_grown_grid_keeps_the_sweep_record():
    """What check 07.3 relies on: adding knob values leaves sweep.json's record unchanged, so finished points stay."""
    base = sweep.SWEEP_PRESETS["smoke"]
    knobs = dict(base.knobs)
    grown = replace(base, knobs=(("rating_noise_sd", knobs["rating_noise_sd"]), ("eeg_to_eog", knobs["eeg_to_eog"]),
                                 ("n_trials", (*knobs["n_trials"], 16))))
    assert sweep.sweep_record(grown) == sweep.sweep_record(base)
