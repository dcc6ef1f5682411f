"""kdlib.models.student: the EOG-only student, its alignment with the teacher, the adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from kdlib.models import SMOKE, EOGStudent, FeatureAdapter, FusionTeacher, count_params, shape_table
from kdlib.repro import seed_everything
from kdlib.train import call_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pair(n_samples: int = 128, seed: int = 0):
    cfg = replace(SMOKE, n_samples=n_samples)
    seed_everything(seed)
    return FusionTeacher(cfg).eval(), EOGStudent(cfg).eval(), cfg


def inputs(cfg, batch: int = 3):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, cfg.n_eeg, cfg.n_samples, generator=g),
            torch.randn(batch, cfg.n_eog, cfg.n_samples, generator=g))


def test_forward_shapes_match_teacher_structure():
    teacher, student, cfg = pair()
    eeg, eog = inputs(cfg)
    t, s = teacher(eeg, eog), student(eog=eog)
    L, d = cfg.n_tokens, cfg.d_model
    assert s.logits.shape == t.logits.shape == (3, cfg.n_classes)
    assert s.fused.shape == (3, L, d) and t.fused.shape == (3, L, 2 * d)
    assert s.pooled.shape == (3, d)
    assert len(s.depths) == cfg.n_layers and len(s.gates) == cfg.n_layers - 1
    assert all(g.abs().max() < 1 for g in s.gates)  # softsign gates
    # same EOG branch (structure and parameter names) as the teacher
    assert student.eog.state_dict().keys() == teacher.eog.state_dict().keys()
    assert count_params(student.eog) == count_params(teacher.eog)
    assert type(student.gating) is type(teacher.fusion.gating)


def test_student_rejects_eeg_and_owns_no_eeg_weights():
    _, student, cfg = pair()
    eeg, eog = inputs(cfg)
    with pytest.raises(ValueError, match="EOG only"):
        student(eeg=eeg, eog=eog)
    with pytest.raises(ValueError, match="EOG only"):
        student(eog)  # positional: binds to eeg, refused rather than misread
    with pytest.raises(ValueError, match="needs its EOG"):
        student()
    assert student.modalities == ("eog",)
    assert all(p.shape[-2:] != (cfg.n_eeg, 1) for p in student.parameters())  # no EEG tokeniser
    # the training loop's uniform call passes None for EEG
    assert torch.equal(call_model(student, eeg, eog).logits, student(eog=eog).logits)
    assert "input.eeg" not in set(shape_table(student).module)


def test_init_from_teacher_copies_the_eog_branch_only():
    teacher, student, cfg = pair()
    assert not torch.equal(student.eog.tokenizer.temporal.weight, teacher.eog.tokenizer.temporal.weight)
    head_before = student.head.fc.weight.clone()
    student.init_from_teacher(teacher)
    for (k, a), b in zip(student.eog.state_dict().items(), teacher.eog.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(student.head.fc.weight, head_before)
    # a copy, not shared storage: training the student leaves the teacher alone
    with torch.no_grad():
        student.eog.tokenizer.temporal.weight.add_(1.0)
    assert not torch.equal(student.eog.tokenizer.temporal.weight, teacher.eog.tokenizer.temporal.weight)


@pytest.mark.parametrize("window_s", [1.0, 2.0, 3.0, 4.0, 8.0])
def test_adapter_shapes_for_every_window_length(window_s):
    teacher, student, cfg = pair(n_samples=int(window_s * 128))
    eeg, eog = inputs(cfg, batch=2)
    with torch.no_grad():
        t, s = teacher(eeg, eog).fused, student(eog=eog).fused  # (B, L, 2d), (B, L, d)
    L, d = cfg.n_tokens, cfg.d_model
    linear = FeatureAdapter(d, 2 * d, "linear")
    a_s, a_t = linear(s, t)
    assert a_s.shape == a_t.shape == (2, L, 2 * d) and linear.width == 2 * d
    assert a_t is t  # the teacher side is the target as it is
    pool = FeatureAdapter(d, 2 * d, "pool")
    p_s, p_t = pool(s, t)
    assert p_s.shape == p_t.shape == (2, L, d) and p_s is s
    assert count_params(pool) == 0 and count_params(linear) == d * 2 * d + 2 * d


def test_pool_adapter_averages_adjacent_feature_pairs():
    pool = FeatureAdapter(2, 4, "pool")
    t = torch.tensor([[[1.0, 3.0, 10.0, 20.0]]])  # (1, 1, 4): EEG half [1, 3], EOG half [10, 20]
    assert torch.equal(pool.teacher_side(t), torch.tensor([[[2.0, 15.0]]]))


def test_adapter_validates():
    with pytest.raises(ValueError, match="adapter kind"):
        FeatureAdapter(4, 8, "conv")
    with pytest.raises(ValueError, match="2 \\* d_student"):
        FeatureAdapter(4, 6, "pool")
