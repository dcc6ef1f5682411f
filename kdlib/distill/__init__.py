"""Knowledge distillation from the EEG + EOG teacher into the EOG-only student.

Introduced in ``notebooks/03_student_alignment.ipynb``.

* :mod:`kdlib.distill.losses`: cross-entropy, Hinton KD, fused-feature distillation, the
  student's combined loss and one teaching step;
* :mod:`kdlib.distill.distill`: :class:`DistillConfig` with the ablation's presets
  (``scratch``, ``v1``, ``v2``, ``v3``) and :func:`distill`, which trains one fold's student;
* :mod:`kdlib.distill.feedback`: variation 3, dynamic feedback (``PRESETS["v3"]``): teaching
  phases alternate with feedback phases that update a copy of the teacher through the student's
  look-ahead step (notebook 04);
* :mod:`kdlib.distill.cka`: linear CKA, to measure how close the student's features come to the
  teacher's.

>>> from kdlib.distill import PRESETS, distill
>>> result = distill(teacher, train, val, "valence", PRESETS["v2"])   # doctest: +SKIP
>>> result.student(eog=eog).logits                                     # doctest: +SKIP
"""

from .cka import linear_cka
from .distill import (PRESETS, SCRATCH, V1, V2, V3, DistillConfig, DistillResult, StudentWithAdapter, TeacherTargets,
                      build_student, distill, frozen, teacher_targets)
from .feedback import (TEACHER_SCOPES, FeedbackConfig, FeedbackTerms, branch_outputs, distill_feedback,
                       feedback_batch, feedback_parameters, feedback_step, lookahead_params, meta_objective,
                       metric_guidance, teacher_outputs)
from .losses import (FEATURE_LOSSES, FEATURE_NORMS, cross_entropy, feature_cosine, feature_loss, feature_mse,
                     hinton_kd, loss_shares, student_loss, teaching_step)

__all__ = [
    "DistillConfig", "SCRATCH", "V1", "V2", "V3", "PRESETS", "DistillResult", "distill",
    "TeacherTargets", "teacher_targets", "StudentWithAdapter", "build_student", "frozen",
    "cross_entropy", "hinton_kd", "feature_mse", "feature_cosine", "FEATURE_LOSSES", "feature_loss",
    "student_loss", "loss_shares", "FEATURE_NORMS", "teaching_step", "linear_cka",
    "FeedbackConfig", "FeedbackTerms", "teacher_outputs", "lookahead_params", "meta_objective", "feedback_step",
    "feedback_batch", "metric_guidance", "distill_feedback", "TEACHER_SCOPES", "branch_outputs",
    "feedback_parameters",
]
