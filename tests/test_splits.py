"""Leakage-safe folds, including property tests over random trial layouts (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdlib.data.splits import (Fold, LeakageError, check_no_trial_leakage, fold_table, leaky_window_split,
                               leave_one_subject_out, trial_kfold)
from kdlib.data.windows import WindowSet


def _windowset(n_subjects: int, n_trials: int, n_win: int, ratings: np.ndarray) -> WindowSet:
    """A tiny WindowSet (4 samples per window) with ratings per (subject, trial)."""
    n = n_subjects * n_trials * n_win
    subject = np.repeat([f"s{i + 1:02d}" for i in range(n_subjects)], n_trials * n_win)
    trial = np.tile(np.repeat(np.arange(1, n_trials + 1), n_win), n_subjects)
    r = np.repeat(ratings.reshape(n_subjects * n_trials, 1), n_win, axis=0)
    return WindowSet(eeg=np.zeros((n, 2, 4), np.float32), eog=np.zeros((n, 1, 4), np.float32),
                     ratings=np.hstack([r, r[:, ::-1] * 0 + 5.5, r, r]).astype(np.float32),
                     subject=subject, trial=trial, start_s=np.zeros(n), fs=128.0,
                     eeg_channels=("a", "b"), eog_channels=("c",))


@st.composite
def layouts(draw):
    n_subjects = draw(st.integers(1, 3))
    n_trials = draw(st.integers(10, 24))
    n_win = draw(st.integers(1, 6))
    ratings = np.array(draw(st.lists(st.floats(1, 9), min_size=n_subjects * n_trials,
                                     max_size=n_subjects * n_trials)))
    return _windowset(n_subjects, n_trials, n_win, ratings)


@settings(max_examples=40, deadline=None)
@given(ws=layouts(), n_splits=st.integers(2, 5), seed=st.integers(0, 1000))
def test_trial_kfold_never_splits_a_trial(ws, n_splits, seed):
    for subject in ws.subjects():
        folds = trial_kfold(ws, "valence", n_splits=n_splits, seed=seed, subject=subject)
        mine = np.flatnonzero(ws.subject == subject)
        tested = np.concatenate([f.test for f in folds])
        assert sorted(tested.tolist()) == mine.tolist()  # every window tested exactly once
        for f in folds:
            check_no_trial_leakage(ws, f)
            assert len(f.val) > 0 and len(f.train) > 0
            assert set(ws.subject[np.concatenate([f.train, f.val, f.test])]) == {subject}
            all_idx = np.concatenate([f.train, f.val, f.test])
            assert sorted(all_idx.tolist()) == mine.tolist()  # train + val + test = the subject


@settings(max_examples=20, deadline=None)
@given(ws=layouts(), seed=st.integers(0, 1000))
def test_loso_never_splits_a_subject(ws, seed):
    if len(ws.subjects()) < 2:
        with pytest.raises(ValueError, match="at least 2 subjects"):
            leave_one_subject_out(ws, "arousal", seed=seed)
        return
    folds = leave_one_subject_out(ws, "arousal", seed=seed)
    assert len(folds) == len(ws.subjects())
    for f in folds:
        check_no_trial_leakage(ws, f, by="subject")
        assert len(set(ws.subject[f.test])) == 1


def test_stratified_folds_keep_class_balance():
    ratings = np.array([2.0] * 10 + [8.0] * 10)
    ws = _windowset(1, 20, 3, ratings)
    for f in trial_kfold(ws, "valence", n_splits=5, seed=0):
        y = ws.labels("valence")
        assert y[f.test].mean() == pytest.approx(0.5)
        assert 0 < y[f.val].mean() < 1


def test_same_seed_same_folds_and_seed_changes_them():
    ws = _windowset(1, 20, 2, np.linspace(1, 9, 20))
    a, b, c = (trial_kfold(ws, "valence", seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(x.test, y.test) and np.array_equal(x.val, y.val) for x, y in zip(a, b))
    assert any(not np.array_equal(x.test, y.test) for x, y in zip(a, c))


def test_leaky_split_leaks_and_the_check_catches_it():
    ws = _windowset(1, 10, 6, np.linspace(1, 9, 10))
    folds = leaky_window_split(ws, "valence", n_splits=3)
    assert all(f.leaky for f in folds)
    with pytest.raises(LeakageError, match="trial"):
        for f in folds:
            check_no_trial_leakage(ws, f)


def test_check_catches_shared_windows_and_trials():
    ws = _windowset(1, 4, 2, np.array([2.0, 8.0, 2.0, 8.0]))
    with pytest.raises(LeakageError, match="window"):
        check_no_trial_leakage(ws, Fold(0, np.array([0, 1]), np.array([], int), np.array([1, 2])))
    with pytest.raises(LeakageError, match="trial"):
        check_no_trial_leakage(ws, Fold(0, np.array([0]), np.array([], int), np.array([1])))
    check_no_trial_leakage(ws, Fold(0, np.array([0, 1]), np.array([2, 3]), np.array([4, 5])))


def test_errors():
    ws = _windowset(2, 4, 1, np.linspace(1, 9, 8))
    with pytest.raises(ValueError, match="pass subject"):
        trial_kfold(ws, "valence")
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        trial_kfold(ws, "valence", subject="s01")
    with pytest.raises(ValueError, match="not in the window set"):
        trial_kfold(ws, "valence", subject="s09", n_splits=2)


def test_fold_table_lists_each_trial_once_per_fold():
    ws = _windowset(1, 10, 3, np.linspace(1, 9, 10))
    folds = trial_kfold(ws, "valence", n_splits=5)
    table = fold_table(ws, folds)
    assert len(table) == 5 * 10
    assert (table.groupby(["fold", "trial"]).size() == 1).all()
    assert set(table.side) == {"train", "val", "test"}


def test_subject_check_catches_test_subject_in_training():
    ws = _windowset(2, 2, 1, np.array([2.0, 8.0, 2.0, 8.0]))  # windows 0,1: s01; 2,3: s02
    fold = Fold(0, np.array([0, 2]), np.array([], int), np.array([3]), name="loso/s02")
    check_no_trial_leakage(ws, fold)  # no trial shared ...
    with pytest.raises(LeakageError, match=r"test subject\(s\) \['s02'\] also in train"):
        check_no_trial_leakage(ws, fold, by="subject")  # ... but subject s02 is on both sides


# --- the quiz: held-out training trials for variation 3's feedback ---------------------------------

def _sides(ws, fold):
    return {side: set(ws.groups[getattr(fold, side)]) for side in Fold.SIDES}


@settings(max_examples=30, deadline=None)
@given(ws=layouts(), n_splits=st.integers(2, 4), seed=st.integers(0, 1000),
       quiz_size=st.sampled_from([0.1, 0.15, 0.25]))
def test_quiz_is_disjoint_from_every_other_side_at_trial_level(ws, n_splits, seed, quiz_size):
    folds = [f for s in ws.subjects() for f in trial_kfold(ws, "valence", n_splits, seed=seed, subject=s,
                                                             quiz_size=quiz_size)]
    if len(ws.subjects()) > 1:
        folds += leave_one_subject_out(ws, "valence", seed=seed, quiz_size=quiz_size)
    for f in folds:
        check_no_trial_leakage(ws, f, by="subject" if f.name.startswith("loso") else "trial")
        sides = _sides(ws, f)
        assert sides["quiz"] and not sides["quiz"] & (sides["train"] | sides["val"] | sides["test"])
        n_training = len(sides["train"] | sides["quiz"] | sides["val"])
        assert len(sides["quiz"]) == max(1, round(quiz_size * n_training))


def test_quiz_leaves_validation_and_test_as_without_it():
    ws = _windowset(1, 40, 3, np.random.default_rng(0).uniform(1, 9, 40))
    plain, quizzed = trial_kfold(ws, "valence", 5, seed=4), trial_kfold(ws, "valence", 5, seed=4, quiz_size=0.15)
    for a, b in zip(plain, quizzed):
        assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
        assert np.array_equal(np.sort(np.r_[b.train, b.quiz]), a.train) and len(b.quiz) == 5 * 3
        assert len(a.quiz) == 0


def test_leakage_check_catches_a_quiz_trial_that_is_also_taught():
    ws = _windowset(1, 20, 2, np.random.default_rng(1).uniform(1, 9, 20))
    f = trial_kfold(ws, "valence", 4, quiz_size=0.2)[0]
    leaky = Fold(f.index, np.r_[f.train, f.quiz[:1]], f.val, f.test, name="bad", quiz=f.quiz)
    with pytest.raises(LeakageError, match="train and quiz"):
        check_no_trial_leakage(ws, leaky)
    assert set(fold_table(ws, [f])["side"]) == {"train", "quiz", "val", "test"}


def test_leaky_split_quiz_takes_training_windows_only():
    ws = _windowset(1, 20, 4, np.random.default_rng(2).uniform(1, 9, 20))
    for f in leaky_window_split(ws, "valence", 4, quiz_size=0.15):
        assert len(f.quiz) and not set(f.quiz) & (set(f.train) | set(f.val) | set(f.test))


def test_quiz_and_validation_sizes_are_checked():
    ws = _windowset(1, 20, 2, np.random.default_rng(3).uniform(1, 9, 20))
    for kw in (dict(quiz_size=-0.1), dict(quiz_size=float("nan")), dict(val_size=0.5, quiz_size=0.5)):
        with pytest.raises(ValueError, match="size"):
            trial_kfold(ws, "valence", 4, **kw)
