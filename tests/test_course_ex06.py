"""Notebook 06's graded exercises (kdlib.course.ex06): each check rejects plausible wrong answers.

That each passes on the notebook's solution and fails on the student edition's stub is checked for every
exercise of the course by tests/test_course.py (``editions.verify_editions``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from kdlib.course import CheckFailed, ex06
from kdlib.course.editions import exercise_function, exercises

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "06_bring_your_own_data.ipynb"
EXERCISES = {  # id -> (function name, check)
    "06.1": ("resample", ex06.check_resample),
    "06.2": ("quantisation_step", ex06.check_quantisation_step),
    "06.3": ("heog_and_swap", ex06.check_heog_and_swap),
    "06.4": ("manifest_toml", ex06.check_manifest_toml),
    "06.5": ("surviving_trials", ex06.check_surviving_trials),
}


def solution(exercise_id):
    """The function the notebook's solution cell defines, run in a fresh namespace as the editions do."""
    return exercise_function(NOTEBOOK, exercise_id)


def test_the_notebook_holds_these_exercises():
    assert [ex.exercise_id for ex in exercises(NOTEBOOK)] == sorted(EXERCISES)


def _interp(x, fs, new_fs):  # linear interpolation: damps 11 Hz by a few %
    t, t_new = np.arange(x.shape[1]) / fs, np.arange(int(x.shape[1] * new_fs / fs)) / new_fs
    return np.stack([np.interp(t_new, t, row) for row in x])


WRONG_RESAMPLE = {
    "repeated samples": lambda x, fs, new_fs: np.repeat(x, int(new_fs // fs), axis=1) if new_fs >= fs else x,
    "channel axis": lambda x, fs, new_fs: scipy.signal.resample(x, int(x.shape[0] * new_fs / fs), axis=0),
    "linear interpolation": _interp,
    "shifted by 3 samples": lambda x, fs, new_fs: np.roll(scipy.signal.resample_poly(x, new_fs, fs, axis=1), 3, axis=1),
}
WRONG_STEP = {
    "65535 values": lambda lo, hi, fmt: (hi - lo) / (2 ** (16 if fmt == "edf" else 24) - 1),
    "2**16 values": lambda lo, hi, fmt: (hi - lo) / 2 ** (16 if fmt == "edf" else 24),
    "16 bits for both": lambda lo, hi, fmt: (hi - lo) / 65534,
}


def _heog_positional(mono, names, left):
    heog = mono[0] - mono[1]
    return heog, bool(heog[left].mean() < heog[~left].mean())


def _heog_level(mono, names, left):
    heog = mono[names.index("LO")] - mono[names.index("RO")]
    return heog, bool(heog[left].mean() < 0)


WRONG_HEOG = {"by position": _heog_positional, "by level": _heog_level,
              "never swapped": lambda mono, names, left: (mono[names.index("LO")] - mono[names.index("RO")], False),
              "RO - LO": lambda mono, names, left: (mono[names.index("RO")] - mono[names.index("LO")], True)}


def _toml(recordings, eeg, eog, fs, table="[[recordings]]", pair=lambda p: json.dumps(p), order=list):
    recs = "".join(f"{table}\nsubject = {json.dumps(r['subject'])}\nid = {json.dumps(r['id'])}\n"
                   f"file = {json.dumps(r['file'])}\n" for r in recordings)
    pairs = "".join(f"{name} = {pair(p)}\n" for name, p in eog.items())
    return (f'trials = "trials.csv"\nratings = {{min = 1, max = 9}}\npreprocessing = {{fs = {float(fs)}}}\n'
            f"{recs}[channels]\neeg = {json.dumps(order(eeg))}\n[channels.eog]\n{pairs}")


WRONG_TOML = {
    "[recordings] tables": lambda *a: _toml(*a, table="[recordings]"),
    "'LO-RO' strings": lambda *a: _toml(*a, pair=lambda p: json.dumps(f"{p[0]}-{p[1]}")),
    "EEG sorted": lambda *a: _toml(*a, order=sorted),
    "Python's None": lambda *a: _toml(*a).replace("}\n[[recordings]]", ", eeg_band = None}\n[[recordings]]", 1),
}


def _strict(onsets, end_s, baseline_s, duration_s):
    after, before = np.diff(np.append(onsets, end_s)), np.diff(np.insert(onsets, 0, 0.0))
    return (after > duration_s) & (before > baseline_s)


def _no_ends(onsets, end_s, baseline_s, duration_s):
    after, before = np.diff(np.append(onsets, np.inf)), np.diff(np.insert(onsets, 0, -np.inf))
    return (after >= duration_s) & (before >= baseline_s)


def _whole_gap(onsets, end_s, baseline_s, duration_s):
    after, before = np.diff(np.append(onsets, end_s)), np.diff(np.insert(onsets, 0, 0.0))
    return (after >= duration_s + baseline_s) & (before >= baseline_s + duration_s)


WRONG_TRIALS = {"strict >": _strict, "ends ignored": _no_ends, "whole windows apart": _whole_gap}


@pytest.mark.parametrize("check, wrong", [(ex06.check_resample, f) for f in WRONG_RESAMPLE.values()]
                         + [(ex06.check_quantisation_step, f) for f in WRONG_STEP.values()]
                         + [(ex06.check_heog_and_swap, f) for f in WRONG_HEOG.values()]
                         + [(ex06.check_manifest_toml, f) for f in WRONG_TOML.values()]
                         + [(ex06.check_surviving_trials, f) for f in WRONG_TRIALS.values()],
                         ids=[f"resample-{k}" for k in WRONG_RESAMPLE] + [f"step-{k}" for k in WRONG_STEP]
                         + [f"heog-{k}" for k in WRONG_HEOG] + [f"toml-{k}" for k in WRONG_TOML]
                         + [f"trials-{k}" for k in WRONG_TRIALS])
def test_wrong_answers_fail(check, wrong, capsys):
    with pytest.raises(CheckFailed, match=r"^exercise 06\.\d \("):
        check(wrong)
    assert "✓" not in capsys.readouterr().out


def test_the_toml_helper_of_the_wrong_answers_is_right_when_unchanged():
    """The wrong manifests above differ from a right one by one mistake each: the unchanged helper passes."""
    ex06.check_manifest_toml(_toml)


def test_checks_are_registered():
    from kdlib.course import registered_checks

    checks = registered_checks()
    for exercise_id, (_, check) in EXERCISES.items():
        assert checks[exercise_id] is check
