"""``kdlib.distill.distill``: one entry for every variation of the ablation.

Introduced in ``notebooks/03_student_alignment.ipynb`` (scratch, v1, v2) and
``notebooks/04_dynamic_feedback_distillation.ipynb`` (v3).

The top layer of :mod:`kdlib.distill`: it imports both trainers and picks one by
``config.feedback``, so that neither of them imports the other::

    feedback="none"            -> kdlib.distill.distill.distill               (frozen teacher)
    feedback="meta"/"metric"   -> kdlib.distill.feedback.distill_feedback     (variation 3)
"""

from __future__ import annotations

from kdlib.data.windows import WindowSet
from kdlib.train import DEFAULT as DEFAULT_TRAIN
from kdlib.train import TrainConfig

from .config import V2, DistillConfig
from .distill import distill as distill_frozen
from .feedback import distill_feedback

__all__ = ["distill"]


def distill(teacher, train: WindowSet, val: WindowSet | None, task: str, config: DistillConfig = V2,
            train_config: TrainConfig = DEFAULT_TRAIN, *, model_config=None, desc: str | None = None,
            quiz: WindowSet | None = None):
    """Train the EOG-only student of one fold, with the variation ``config`` describes.

    Introduced in ``notebooks/03_student_alignment.ipynb``.

    Parameters
    ----------
    teacher : FusionTeacher or None
        Trained on *this fold's* training trials (a teacher trained elsewhere leaks the test
        trials through its soft labels); never modified. ``None`` only for
        ``config.needs_teacher == False``, with ``model_config``.
    train, val : WindowSet
        The fold's training and validation windows (normalised like the teacher's).
    task : {'valence', 'arousal'}
    config : DistillConfig
        One of :data:`~kdlib.distill.config.PRESETS` or a variant.
    train_config : TrainConfig
        Epochs, batch size, learning rate, early stopping (as for the teacher).
    model_config : ModelConfig, optional
        The student's sizes; default ``teacher.config`` (required without a teacher).
    desc : str, optional
        Progress-bar label.
    quiz : WindowSet, optional
        Held-out training-side windows (:attr:`kdlib.data.splits.Fold.quiz`, normalised like
        ``train``): where variation 3's feedback phase scores the temporary student. Required
        for ``feedback="meta"``, not read otherwise (so every variation trains on ``train``).

    Returns
    -------
    DistillResult
        See :func:`kdlib.distill.distill.distill` and, for variation 3,
        :func:`kdlib.distill.feedback.distill_feedback` (plus ``steps``, ``teacher``, ``feedback``).
    """
    train_student = distill_feedback if config.feedback != "none" else distill_frozen
    return train_student(teacher, train, val, task, config, train_config, model_config=model_config, desc=desc,
                         quiz=quiz)
