"""The methods and evaluation protocols kdlib runs, by name, each with a one-line description.

One place for these names: :mod:`kdlib.evaluate` runs them (its ``METHODS`` and protocol check
are these), ``kdlib reproduce`` offers them (its ``--methods`` and ``--protocol`` choices and
help texts are built from here) and the notebooks and reports order their tables by
:data:`METHODS`. Plain data, no numpy or torch: the command line reads it without loading them.
Adding a method means adding it here and teaching :func:`kdlib.evaluate.run_unit` to train it.
"""

from __future__ import annotations

__all__ = ["BASELINES", "STUDENTS", "BASELINE_METHODS", "STUDENT_METHODS", "METHODS", "PROTOCOLS",
           "DEFAULT_PROTOCOL"]

#: Methods without a student: the majority-class floor, single-modality nets and the two teachers.
BASELINES: dict[str, str] = {
    "majority": "predict the training trials' majority class (the floor)",
    "eeg_only": "EEG branch alone, trained on the labels",
    "eog_only": "EOG branch alone, trained on the labels",
    "late_fusion": "EEG + EOG teacher, pooled features concatenated",
    "teacher": "EEG + EOG teacher with gated fusion (the paper's teacher)",
}
#: EOG students, distilled from the teacher trained in the same fold (:data:`kdlib.distill.PRESETS`).
STUDENTS: dict[str, str] = {
    "scratch": "EOG student on the labels alone, no teacher (what distillation must beat)",
    "v1": "EOG student, cross-entropy + Hinton KD (variation 1)",
    "v2": "v1 + fused-feature distillation (variation 2)",
    "v3": "v2 + dynamic feedback (variation 3, the paper's full method)",
}
BASELINE_METHODS: tuple[str, ...] = tuple(BASELINES)
STUDENT_METHODS: tuple[str, ...] = tuple(STUDENTS)
METHODS: tuple[str, ...] = BASELINE_METHODS + STUDENT_METHODS  #: every method, in table order

#: How a subject's windows are split into folds (:mod:`kdlib.data.splits`).
PROTOCOLS: dict[str, str] = {
    "trial_kfold": "within-subject folds by trial",
    "loso": "leave one subject out",
    "leaky_window": "windows split regardless of trial (leaks! demonstration only)",
}
DEFAULT_PROTOCOL = "trial_kfold"  #: the leakage-free, within-subject protocol
