"""Models: modality tokeniser + transformer encoder, gated modal fusion, teacher, student, baselines.

Introduced in ``notebooks/02_fusion_teacher.ipynb``.

Every model is called as ``model(eeg, eog)`` and returns a NamedTuple with ``.logits``;
``model.modalities`` names the inputs it reads (the others must be ``None``).

>>> from kdlib.models import FusionTeacher, ModelConfig, shape_table
>>> teacher = FusionTeacher(ModelConfig())          # 4 s windows, 32 EEG + 2 EOG channels
>>> shape_table(teacher)                            # doctest: +SKIP
"""

from .baselines import EEGOnly, EOGOnly, SingleModalityNet, SingleOutput
from .blocks import Block, Branch, ClassifierHead, Encoder, SelfAttention, Tokenizer, mean_pool
from .config import DEFAULT, PAPER, SMOKE, ModelConfig
from .export import LogitsOnly, export_student
from .fusion import DepthGating, FusionOutput, GatingOutput, ModalFusion, ScoreNet, adjacent_pairs
from .summary import (MODELS, build_model, complexity_table, count_macs, count_params, example_inputs,
                      latency_ms, model_zoo, shape_table)
from .student import ADAPTERS, EOGStudent, FeatureAdapter, StudentOutput
from .teacher import BranchOutputs, FusionTeacher, LateFusionTeacher, TeacherOutput

__all__ = [
    "ModelConfig", "SMOKE", "DEFAULT", "PAPER", "latency_ms",
    "Tokenizer", "SelfAttention", "Block", "Encoder", "Branch", "ClassifierHead", "mean_pool",
    "ScoreNet", "DepthGating", "GatingOutput", "ModalFusion", "FusionOutput", "adjacent_pairs",
    "FusionTeacher", "LateFusionTeacher", "TeacherOutput", "BranchOutputs",
    "EOGStudent", "StudentOutput", "FeatureAdapter", "ADAPTERS",
    "SingleModalityNet", "EEGOnly", "EOGOnly", "SingleOutput",
    "MODELS", "build_model", "model_zoo", "example_inputs", "count_params", "count_macs",
    "complexity_table", "shape_table",
    "LogitsOnly", "export_student",
]
