"""Checks of the exercises of ``notebooks/05_evaluation.ipynb``.

- ``05.1`` :func:`check_chance_band` -- the 95 % range of a *mean over subjects* of a guessing
  classifier's accuracy (equal trials per subject), against ``kdlib.stats.chance_band``.
- ``05.2`` :func:`check_loso_split` -- a leave-one-subject-out split of windows, against the
  folds of ``kdlib.data.splits.leave_one_subject_out`` (training side = teaching + validation +
  quiz windows).
- ``05.3`` :func:`check_trial_vote` -- the trial-level vote (mean window probability, then
  argmax), against ``kdlib.evaluate.trial_votes``, the vote ``kdlib.evaluate.scores`` scores with.

Every check builds its own small seeded inputs (CPU, well under a second) and computes the
expected values with kdlib or an independent formula.
"""

from __future__ import annotations

import numpy as np

from kdlib import evaluate, stats
from kdlib.course import check, expect
from kdlib.data.splits import leave_one_subject_out
from kdlib.data.windows import WindowSet

__all__ = ["check_chance_band", "check_loso_split", "check_trial_vote"]


@check("05.1", "the chance band of a mean over subjects")
def check_chance_band(chance_band_of_mean):
    """Check ``chance_band_of_mean(n_subjects, n_trials, p, level)`` -> ``(low, high)``.

    Parameters
    ----------
    chance_band_of_mean : callable
        The student's function.
    """
    for n_subjects, n_trials, p, level in ((8, 40, 0.5, 0.95), (1, 40, 0.5, 0.95), (3, 12, 0.6, 0.9),
                                           (20, 8, 0.5, 0.95)):
        want = stats.chance_band([n_trials] * n_subjects, p, level)
        got = chance_band_of_mean(n_subjects, n_trials, p, level)
        expect(np.shape(got) == (2,), f"expected a pair (low, high), got {got!r}")
        low, high = (float(v) for v in got)
        what = f"{n_subjects} subject(s) × {n_trials} trials, p = {p:g}, level = {level:g}"
        single = evaluate.chance_interval(n_trials, p, level)
        hint = ("that is one subject's interval; the mean over S subjects pools S·n guesses"
                if n_subjects > 1 and np.allclose((low, high), single) else
                "the mean of S accuracies with n guesses each is Binomial(S·n, p) / (S·n): exact, "
                "with scipy.stats.binom.interval, not a normal approximation")
        expect(0 <= low <= high <= 1, f"{what}: got ({low:.4f}, {high:.4f}), not an interval of accuracies "
               f"in [0, 1] (hint: {hint})")
        expect(np.allclose((low, high), want, atol=1e-9),
               f"{what}: got ({low:.4f}, {high:.4f}), expected ({want[0]:.4f}, {want[1]:.4f}) (hint: {hint})")


def _window_set(subjects: list[str], n_trials: int, per_trial: int, seed: int) -> WindowSet:
    """A tiny WindowSet: ``len(subjects) × n_trials`` trials of ``per_trial`` windows, rows shuffled."""
    rng = np.random.default_rng(seed)
    n = len(subjects) * n_trials * per_trial
    subject = np.repeat(np.array(subjects), n_trials * per_trial)
    trial = np.tile(np.repeat(np.arange(1, n_trials + 1), per_trial), len(subjects))
    ratings = np.repeat(rng.uniform(1, 9, size=(n // per_trial, 4)), per_trial, axis=0).astype(np.float32)
    order = rng.permutation(n)  # windows of the subjects interleaved, as after a concatenation and a shuffle
    zeros = np.zeros((n, 1, 4), dtype=np.float32)
    return WindowSet(eeg=zeros, eog=zeros.copy(), ratings=ratings[order], subject=subject[order],
                     trial=trial[order], start_s=np.zeros(n), fs=1.0, eeg_channels=("Fz",), eog_channels=("hEOG",))


@check("05.2", "a leave-one-subject-out split")
def check_loso_split(loso_split):
    """Check ``loso_split(subject)`` -> list of ``(train_idx, test_idx)``, one per subject.

    Parameters
    ----------
    loso_split : callable
        The student's function.
    """
    for seed, subjects in enumerate((["s01", "s02"], ["s03", "s01", "s02"], ["s10", "s02", "s07", "s01"])):
        ws = _window_set(subjects, n_trials=6, per_trial=3, seed=seed)
        kdlib_folds = leave_one_subject_out(ws, "valence", val_size=0.2, seed=seed, quiz_size=0.15)
        want = {ws.subject[f.test[0]]: (np.sort(np.r_[f.train, f.val, f.quiz]), np.sort(f.test)) for f in kdlib_folds}
        got = loso_split(ws.subject.copy())
        expect(len(got) == len(want), f"{len(subjects)} subjects: expected {len(want)} folds (one per subject), "
               f"got {len(got)} (hint: the unit left out is a subject, not a trial or a window)")
        tested = {}
        for k, fold in enumerate(got):
            expect(len(fold) == 2, f"fold {k}: expected a pair (train_idx, test_idx), got {len(fold)} items")
            train_idx, test_idx = (np.sort(np.asarray(a, dtype=np.int64)) for a in fold)
            names = set(ws.subject[test_idx])
            expect(len(names) == 1, f"fold {k}: its test windows come from {sorted(map(str, names))}; each fold tests one subject")
            name = names.pop()
            expect(name not in set(ws.subject[train_idx]),
                   f"fold {k}: subject {name} is tested and also in the training windows (a leak)")
            expect(name not in tested, f"subject {name} is tested in two folds ({tested.get(name)} and {k})")
            tested[name] = k
            want_train, want_test = want[name]
            expect(np.array_equal(test_idx, want_test),
                   f"fold {k} (test {name}): {len(test_idx)} test windows, expected all {len(want_test)} of {name}")
            expect(np.array_equal(train_idx, want_train),
                   f"fold {k} (test {name}): {len(train_idx)} training windows, expected the {len(want_train)} "
                   f"windows of the other subjects (kdlib then carves validation and quiz trials out of them)")


def _vote_case(seed: int, n_classes: int = 2):
    """Window probabilities ``(N, C)`` and trial codes ``(N,)``: unsorted codes, interleaved windows."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.arange(100), size=9, replace=False)  # trial codes, not 0..n-1, not sorted
    groups = np.repeat(codes, rng.integers(1, 7, size=len(codes)))  # one trial may have a single window
    prob = rng.dirichlet(np.ones(n_classes), size=len(groups))  # (N, C)
    order = rng.permutation(len(groups))
    return prob[order], groups[order]


@check("05.3", "the trial-level vote")
def check_trial_vote(trial_vote):
    """Check ``trial_vote(prob, groups)`` -> one predicted class per trial, in ``np.unique(groups)`` order.

    Parameters
    ----------
    trial_vote : callable
        The student's function.
    """
    confident = np.array([[0.1, 0.9], [0.55, 0.45], [0.55, 0.45], [0.3, 0.7]])  # trial 5: one sure window wins
    cases = [(confident, np.array([5, 5, 5, 2]), "windows 0.9, 0.45, 0.45 for class 1 in one trial")]
    cases += [(*_vote_case(seed), f"random case {seed}") for seed in range(3)] + [(*_vote_case(9, 3), "three classes")]
    for prob, groups, what in cases:
        trials, want, _ = evaluate.trial_votes(prob, groups)  # (n_trials,): the vote kdlib scores with
        got = np.asarray(trial_vote(prob.copy(), groups.copy()))
        expect(got.shape == want.shape, f"{what}: expected {len(want)} votes (one per trial), got shape {got.shape}")
        hard = np.array([np.bincount(prob[groups == t].argmax(1), minlength=prob.shape[1]).argmax() for t in trials])
        hint = ("that is a vote of the windows' hard labels; average their probabilities, so that a sure window "
                "counts more than two unsure ones" if np.array_equal(got, hard) else
                "one vote per trial, trials in np.unique(groups) order, the argmax of the mean probability")
        expect(np.array_equal(got, want), f"{what}: votes {got.tolist()}, expected {want.tolist()} (hint: {hint})")
