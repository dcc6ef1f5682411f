"""Knowledge distillation from the EEG + EOG teacher into the EOG-only student.

Introduced in ``notebooks/03_student_alignment.ipynb``.

Layered one way (each module imports only those above it):

* :mod:`kdlib.distill.config`: :class:`DistillConfig` with the ablation's presets (``scratch``,
  ``v1``, ``v2``, ``v3``), :class:`FeedbackConfig` ("meta") and :class:`GuidanceConfig` ("metric") (no torch);
* :mod:`kdlib.distill.losses`: cross-entropy, Hinton KD, fused-feature distillation, the
  student's combined loss (pure functions of alpha, beta, T);
* :mod:`kdlib.distill.targets`: the teacher's outputs (frozen-teacher targets cached once per
  fold, cached branch outputs, one batch with or without gradient);
* :mod:`kdlib.distill.distill`: the student from a frozen teacher (scratch, v1, v2), one
  teaching step, and the fold-batched version;
* :mod:`kdlib.distill.feedback`: variation 3, dynamic feedback (``PRESETS["v3"]``): teaching
  steps alternate with feedback steps that update a copy of the teacher through the student's
  look-ahead step (notebook 04);
* :mod:`kdlib.distill.run`: :func:`distill`, one entry for every variation;
* :mod:`kdlib.distill.cka`: linear CKA, to measure how close the student's features come to the
  teacher's.

>>> from kdlib.distill import PRESETS, distill
>>> result = distill(teacher, train, val, "valence", PRESETS["v2"])   # doctest: +SKIP
>>> result.student(eog=eog).logits                                     # doctest: +SKIP
"""

from .cka import linear_cka
from .config import PRESETS, SCRATCH, TEACHER_SCOPES, V1, V2, V3, DistillConfig, FeedbackConfig, GuidanceConfig
from .distill import DistillResult, StudentWithAdapter, build_student, teaching_step
from .feedback import (FeedbackTerms, distill_feedback, feedback_batch, feedback_parameters, feedback_step,
                       lookahead_params, meta_objective, metric_guidance)
from .losses import (FEATURE_LOSSES, FEATURE_NORMS, cross_entropy, feature_cosine, feature_loss, feature_mse,
                     hinton_kd, loss_shares, student_loss)
from .run import distill
from .targets import TeacherTargets, branch_outputs, frozen, teacher_outputs, teacher_targets

__all__ = [
    "DistillConfig", "SCRATCH", "V1", "V2", "V3", "PRESETS", "DistillResult", "distill",
    "TeacherTargets", "teacher_targets", "StudentWithAdapter", "build_student", "frozen",
    "cross_entropy", "hinton_kd", "feature_mse", "feature_cosine", "FEATURE_LOSSES", "feature_loss",
    "student_loss", "loss_shares", "FEATURE_NORMS", "teaching_step", "linear_cka",
    "FeedbackConfig", "GuidanceConfig", "FeedbackTerms", "teacher_outputs", "lookahead_params", "meta_objective",
    "feedback_step",
    "feedback_batch", "metric_guidance", "distill_feedback", "TEACHER_SCOPES", "branch_outputs",
    "feedback_parameters",
]
