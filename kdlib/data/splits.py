"""Leakage-safe folds: split by trial, carve validation trials out of the training trials.

Introduced in ``notebooks/01_data_preparation.ipynb``.

Neighbouring windows of one trial are nearly the same signal. Putting some of them in training
and others in test lets a model recognise the *trial* instead of the emotion, and inflates DEAP
accuracies to 90-99 %. So the unit of every split here is the trial (or the subject):

* :func:`trial_kfold` -- within-subject, stratified k-fold over trials (the default protocol);
* :func:`leave_one_subject_out` -- every subject once as the test set;
* :func:`leaky_window_split` -- windows shuffled regardless of trial. **Wrong on purpose**, kept
  only for the leakage demonstration in ``notebooks/05_evaluation.ipynb``.

Each :class:`Fold` holds window indices for train / validation / test, and optionally a *quiz*
side. Validation trials (for early stopping and model selection) always come from the training
trials, never from the test fold. Quiz trials (``quiz_size > 0``) are also carved out of the
training trials: no model is trained on them and early stopping never sees them; variation 3's
feedback phase scores the temporary student there (``notebooks/04``), so that the teacher is
rewarded for the student's *generalisation* to unseen trials, not for its in-sample fit.
Every method of a fold trains on the same ``train`` windows, so comparing them stays fair.
:func:`check_no_trial_leakage` proves that no trial sits on two sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold, KFold, train_test_split

from .windows import ChannelScaler, WindowSet

__all__ = [
    "Fold",
    "LeakageError",
    "trial_kfold",
    "leave_one_subject_out",
    "leaky_window_split",
    "check_no_trial_leakage",
    "fold_windows",
    "fold_table",
]


class LeakageError(AssertionError):
    """A trial (or, for subject-wise protocols, a subject) appears on two sides of a fold."""


@dataclass(frozen=True, eq=False)
class Fold:
    """Window indices of one fold.

    Attributes
    ----------
    index : int
        Fold number.
    train, val, test : ndarray of int
        Window indices into the WindowSet the fold was made from. ``train`` are the *teaching*
        windows: the only ones any model is trained on.
    name : str
        E.g. ``"s01/fold2"`` or ``"loso/s05"``.
    leaky : bool
        True only for :func:`leaky_window_split` folds.
    quiz : ndarray of int
        Held-out training-side windows for variation 3's feedback phase (empty unless the
        split was made with ``quiz_size > 0``): never trained on, never used for validation.
    """

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str = ""
    leaky: bool = False
    quiz: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    #: The sides of a fold, in the order tables and checks list them.
    SIDES = ("train", "quiz", "val", "test")


def _trials_of(ws: WindowSet, idx: np.ndarray, task: str):
    """Unique trial codes of windows ``idx`` and each trial's label (first window's)."""
    groups = ws.groups[idx]
    codes, first = np.unique(groups, return_index=True)
    return codes, ws.labels(task)[idx][first]


def _stratify_or_none(y: np.ndarray, n: int) -> np.ndarray | None:
    """``y`` if every class has at least ``n`` members, else None (plain random split)."""
    _, counts = np.unique(y, return_counts=True)
    return y if len(counts) > 1 and counts.min() >= n else None


def _split_val(codes: np.ndarray, y: np.ndarray, val_size: float, seed: int, n_val: int | None = None,
               what: str = "validation"):
    """Training trial codes -> (train codes, held-out codes), stratified when possible.

    ``n_val`` (default ``round(val_size * len(codes))``, at least 1) trials are held out.
    """
    if val_size <= 0 and not n_val:
        return codes, codes[:0]
    n_val = n_val or max(1, int(round(val_size * len(codes))))
    if n_val >= len(codes):
        raise ValueError(f"cannot carve {n_val} {what} trials out of {len(codes)} training trials")
    n_classes = len(np.unique(y))
    fits = min(n_val, len(codes) - n_val) >= n_classes  # stratifying needs one of each class per side
    tr, va = train_test_split(codes, test_size=n_val, random_state=seed,
                              stratify=_stratify_or_none(y, 2) if fits else None)
    return np.sort(tr), np.sort(va)


def _windows_of(groups: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(groups, codes))


def _split_train(codes: np.ndarray, y: np.ndarray, val_size: float, quiz_size: float, seed: int):
    """A fold's training trial codes -> (teaching, quiz, validation) codes.

    Validation is carved first (exactly as without a quiz, so ``quiz_size=0`` reproduces the
    folds of earlier versions), then ``round(quiz_size * len(codes))`` quiz trials (at least one)
    from what is left, stratified by label when possible.
    """
    tr, va = _split_val(codes, y, val_size, seed)
    if quiz_size <= 0:
        return tr, tr[:0], va
    n_quiz = max(1, int(round(quiz_size * len(codes))))
    tr_y = y[np.searchsorted(codes, tr)] if len(codes) else y
    tr, qz = _split_val(tr, tr_y, quiz_size, seed + 7919, n_val=n_quiz, what="quiz")  # 7919: its own stream
    return tr, qz, va


def _check_sizes(val_size: float, quiz_size: float) -> None:
    for name, v in (("val_size", val_size), ("quiz_size", quiz_size)):
        if not np.isfinite(v) or not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v}")
    if val_size + quiz_size >= 1:
        raise ValueError(f"val_size + quiz_size must be < 1 (some trials must be left to train on), "
                         f"got {val_size} + {quiz_size}")


def trial_kfold(ws: WindowSet, task: str, n_splits: int = 5, val_size: float = 0.2,
                seed: int = 0, subject: str | None = None, quiz_size: float = 0.0) -> list[Fold]:
    """Within-subject stratified k-fold over trials.

    Parameters
    ----------
    ws : WindowSet
        Windows; when it holds several subjects, pass ``subject``.
    task : {'valence', 'arousal'}
        The label the trials are stratified by.
    n_splits : int
        Folds; every trial is in the test set of exactly one fold.
    val_size : float
        Share of each fold's training trials held out for validation (0 for none).
    seed : int
        Shuffling seed.
    subject : str, optional
        Restrict to this subject's windows (required if ``ws`` holds several subjects).
    quiz_size : float
        Share of each fold's training trials held out as the quiz (variation 3's feedback
        batches; 0 for none). Carved after validation, from the remaining training trials.

    Returns
    -------
    list of Fold
    """
    _check_sizes(val_size, quiz_size)
    subjects = ws.subjects()
    if subject is None:
        if len(subjects) != 1:
            raise ValueError(f"trial_kfold is within-subject: pass subject= (one of {subjects})")
        subject = subjects[0]
    if subject not in subjects:
        raise ValueError(f"subject {subject!r} not in the window set ({subjects})")
    mine = np.flatnonzero(ws.subject == subject)
    codes, y = _trials_of(ws, mine, task)
    if len(codes) < n_splits:
        raise ValueError(f"{subject}: {len(codes)} trials cannot make {n_splits} folds")
    stratified = _stratify_or_none(y, n_splits) is not None
    splitter = (StratifiedKFold if stratified else KFold)(n_splits, shuffle=True, random_state=seed)
    groups = ws.groups
    folds = []
    for k, (tr, te) in enumerate(splitter.split(codes, y)):
        tr_codes, qz_codes, va_codes = _split_train(codes[tr], y[tr], val_size, quiz_size, seed + k)
        folds.append(Fold(k, _windows_of(groups, tr_codes), _windows_of(groups, va_codes),
                          _windows_of(groups, codes[te]), name=f"{subject}/fold{k}",
                          quiz=_windows_of(groups, qz_codes)))
    return folds


def leave_one_subject_out(ws: WindowSet, task: str, val_size: float = 0.2, seed: int = 0,
                          quiz_size: float = 0.0) -> list[Fold]:
    """Every subject once as the test set; validation (and quiz) trials drawn from the training
    subjects' trials.

    Parameters
    ----------
    ws : WindowSet
        At least two subjects.
    task : {'valence', 'arousal'}
    val_size, quiz_size : float
        Shares of the training trials held out for validation and for the quiz.
    seed : int

    Returns
    -------
    list of Fold
        One per subject, named ``loso/<subject>``.
    """
    _check_sizes(val_size, quiz_size)
    subjects = ws.subjects()
    if len(subjects) < 2:
        raise ValueError(f"leave-one-subject-out needs at least 2 subjects, got {subjects}")
    groups = ws.groups
    folds = []
    for k, (tr, te) in enumerate(LeaveOneGroupOut().split(ws.eeg, groups=ws.subject)):
        codes, y = _trials_of(ws, tr, task)
        tr_codes, qz_codes, va_codes = _split_train(codes, y, val_size, quiz_size, seed + k)
        test_subject = ws.subject[te[0]]
        folds.append(Fold(k, _windows_of(groups, tr_codes), _windows_of(groups, va_codes), te,
                          name=f"loso/{test_subject}", quiz=_windows_of(groups, qz_codes)))
    return folds


def leaky_window_split(ws: WindowSet, task: str, n_splits: int = 5, val_size: float = 0.2,
                       seed: int = 0, quiz_size: float = 0.0) -> list[Fold]:
    """Window-level k-fold that ignores trials. **Leaks by design**: windows of one trial land
    in train and test. Only for demonstrating the inflation (notebook 05); never for results.
    Its quiz (``quiz_size > 0``) is drawn from the training windows, regardless of trial, too.

    Parameters
    ----------
    ws : WindowSet
    task : {'valence', 'arousal'}
        The label the windows are stratified by.
    n_splits : int
        Folds; every window is in the test set of exactly one fold.
    val_size, quiz_size : float
        Shares of each fold's training windows held out for validation and for the quiz.
    seed : int
        Shuffling seed.

    Returns
    -------
    list of Fold
        Named ``leaky/fold<k>``, with ``leaky=True``.
    """
    _check_sizes(val_size, quiz_size)
    idx = np.arange(len(ws))
    y = ws.labels(task)
    folds = []
    for k, (tr, te) in enumerate(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(idx, y)):
        n_tr = len(tr)
        tr, va = train_test_split(tr, test_size=val_size, random_state=seed + k, stratify=y[tr])
        qz = tr[:0]
        if quiz_size > 0:
            tr, qz = train_test_split(tr, test_size=max(1, int(round(quiz_size * n_tr))),
                                      random_state=seed + k + 7919, stratify=y[tr])
        folds.append(Fold(k, np.sort(tr), np.sort(va), te, name=f"leaky/fold{k}", leaky=True, quiz=np.sort(qz)))
    return folds


def check_no_trial_leakage(ws: WindowSet, fold: Fold, by: str = "trial") -> None:
    """Prove a fold clean, or raise :class:`LeakageError`.

    Always checked: no window and no trial on two sides (train / quiz / val / test). With
    ``by='subject'`` (leave-one-subject-out) also: no test subject in train, quiz or validation.

    Parameters
    ----------
    ws : WindowSet
        The windows the fold indexes.
    fold : Fold
    by : {'trial', 'subject'}
        What may not be shared between the sides.
    """
    if by not in ("trial", "subject"):
        raise ValueError(f"by must be 'trial' or 'subject', got {by!r}")
    parts = {side: getattr(fold, side) for side in Fold.SIDES}
    groups = ws.groups
    for i, a in enumerate(Fold.SIDES):
        for b in Fold.SIDES[i + 1:]:
            shared_windows = np.intersect1d(parts[a], parts[b])
            if len(shared_windows):
                raise LeakageError(f"{fold.name}: {len(shared_windows)} window(s) in both {a} and {b}")
            shared = np.intersect1d(groups[parts[a]], groups[parts[b]])
            if len(shared):
                raise LeakageError(f"{fold.name}: {len(shared)} trial(s) have windows in both {a} and {b}")
    if by == "subject":
        test_subjects = np.unique(ws.subject[fold.test])
        for side in ("train", "quiz", "val"):
            shared = np.intersect1d(test_subjects, ws.subject[parts[side]])
            if len(shared):
                raise LeakageError(f"{fold.name}: test subject(s) {shared.tolist()} also in {side}")


def fold_windows(ws: WindowSet, fold: Fold, by: str | None = "trial") -> dict[str, WindowSet]:
    """The windows of a fold's sides, z-scored per channel with the *teaching* windows' statistics.

    Parameters
    ----------
    ws : WindowSet
        The windows the fold was made from.
    fold : Fold
    by : {'trial', 'subject'} or None
        What :func:`check_no_trial_leakage` checks first ('subject' for leave-one-subject-out);
        ``None`` skips the check, for the :func:`leaky_window_split` demonstration only (a
        leaky fold is refused otherwise).

    Returns
    -------
    dict of str -> WindowSet
        ``train``, ``quiz``, ``val``, ``test`` (:attr:`Fold.SIDES`; ``quiz`` may be empty).
    """
    if fold.leaky and by is not None:
        raise LeakageError(f"{fold.name}: a leaky fold (the demonstration split); pass by=None to use it anyway")
    if by is not None:
        check_no_trial_leakage(ws, fold, by=by)
    scaler = ChannelScaler.fit(ws.subset(fold.train))
    return {side: scaler.transform(ws.subset(getattr(fold, side))) for side in Fold.SIDES}


def fold_table(ws: WindowSet, folds: list[Fold]):
    """Long table (pandas): one row per (fold, subject, trial) with the side it sits on.
    What the fold picture in notebook 01 draws.

    Parameters
    ----------
    ws : WindowSet
        The windows the folds index.
    folds : list of Fold

    Returns
    -------
    pandas.DataFrame
        Columns ``fold``, ``subject``, ``trial``, ``side`` (one of ``Fold.SIDES``), sorted.
    """
    import pandas as pd

    parts = []
    for fold in folds:
        for side in Fold.SIDES:
            idx = getattr(fold, side)
            parts.append(pd.DataFrame(dict(fold=fold.index, subject=ws.subject[idx], trial=ws.trial[idx], side=side)))
    table = pd.concat(parts, ignore_index=True).drop_duplicates()
    return table.sort_values(["fold", "subject", "trial"], ignore_index=True)
