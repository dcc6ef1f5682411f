"""kdlib.distill: KD and feature losses, linear CKA, the frozen teacher, distill's variations."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from test_train import MODEL, QUICK, planted, states_equal  # noqa: E402  (the same tiny planted fold)

from kdlib.distill import (PRESETS, SCRATCH, V1, V2, DistillConfig, StudentWithAdapter, build_student, distill,
                           feature_cosine, feature_loss, feature_mse, hinton_kd, linear_cka, loss_shares, student_loss,
                           teacher_targets, teaching_step)
from kdlib.models import EOGStudent, FeatureAdapter, FusionTeacher
from kdlib.repro import seed_everything
from kdlib.train import evaluate, fit, make_optimizer, to_tensors

TRAIN = replace(QUICK, epochs=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def logits(seed: int, b: int = 8, c: int = 2, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(b, c, generator=torch.Generator().manual_seed(seed))


# --- Hinton KD ---------------------------------------------------------------------------------

def test_kd_is_zero_for_equal_logits_and_grows_with_disagreement():
    t = logits(0)
    for T in (1.0, 2.0, 4.0):
        assert float(hinton_kd(t, t, T)) == pytest.approx(0.0, abs=1e-7)
        assert float(hinton_kd(t + 3.0, t, T)) == pytest.approx(0.0, abs=1e-6)  # shift-invariant softmax
        gaps = [float(hinton_kd(t + eps * logits(1), t, T)) for eps in (0.5, 1.0, 2.0, 4.0)]
        assert all(g > 0 for g in gaps) and gaps == sorted(gaps)


def test_kd_matches_the_formula_with_t_squared():
    s, t = logits(2, c=3), logits(3, c=3)
    for T in (1.0, 3.0):
        p_t, p_s = (t / T).softmax(-1), (s / T).softmax(-1)
        kl = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
        assert float(hinton_kd(s, t, T)) == pytest.approx(T ** 2 * float(kl), rel=1e-5)


def test_t_squared_keeps_the_kd_scale_for_large_t():
    s, t = logits(4), logits(5)
    kd10, kd20 = float(hinton_kd(s, t, 10.0)), float(hinton_kd(s, t, 20.0))
    assert kd20 == pytest.approx(kd10, rel=0.02)  # without T^2, kd20 would be ~kd10 / 4
    with pytest.raises(ValueError, match="temperature"):
        hinton_kd(s, t, 0.0)


# --- feature losses and the student loss --------------------------------------------------------

def test_feature_losses():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    assert float(feature_mse(a, a)) == 0.0 and float(feature_mse(a, b)) == pytest.approx(float(((a - b) ** 2).mean()))
    assert float(feature_cosine(a, 3.0 * a)) == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert float(feature_cosine(a, -a)) == pytest.approx(2.0, abs=1e-6)
    adapter = FeatureAdapter(4, 8, "pool")
    s = torch.randn(2, 5, 4, generator=g)
    t = s.repeat_interleave(2, dim=-1)  # (2, 5, 8): each student feature twice
    assert float(feature_loss(s, t, adapter, "mse")) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="feature loss"):
        feature_loss(s, t, adapter, "l1")


@torch.no_grad()
def test_feature_term_has_a_stated_scale_whatever_the_teachers():
    seed_everything(0)
    adapter = FeatureAdapter(8, 16)
    s, t = torch.randn(3, 5, 8), torch.randn(3, 5, 16)
    base = feature_loss(s, t, adapter)
    assert float(feature_loss(s, 100.0 * t + 7.0, adapter)) == pytest.approx(float(base), rel=1e-4)
    assert float(feature_loss(s, 100.0 * t, adapter, norm="none")) > 100 * float(feature_loss(s, t, adapter, norm="none"))
    with pytest.raises(ValueError, match="norm"):
        feature_loss(s, t, adapter, norm="batch")
    with pytest.raises(ValueError, match="feature_norm"):
        replace(V2, feature_norm="batch")


def test_loss_shares_add_up_and_follow_the_weights():
    parts = {"ce": 0.6, "kd": 0.2, "feat": 2.0}
    sh = loss_shares(parts, alpha=0.5, beta=0.1)
    assert sh["share_ce"] == pytest.approx(0.6 / 0.9) and sh["share_kd"] == pytest.approx(0.1 / 0.9)
    assert sum(sh.values()) == pytest.approx(1.0)
    assert loss_shares({"ce": 0.6, "kd": 0.2, "feat": math.nan}, 0.5, 0.0)["share_feat"] == 0.0
    assert loss_shares({"ce": 0.6, "kd": math.nan, "feat": math.nan}, 0.0, 0.0) == {
        "share_ce": 1.0, "share_kd": 0.0, "share_feat": 0.0}


@torch.no_grad()
def test_student_loss_combines_its_parts():
    seed_everything(0)
    model = build_student(MODEL, V2)
    eog, y = torch.randn(4, 2, 128), torch.tensor([0, 1, 1, 0])
    out = model(eog=eog)
    teacher_out = FusionTeacher(MODEL).eval()(torch.randn(4, 32, 128), eog)
    ce = float(F.cross_entropy(out.logits, y))
    kd = float(hinton_kd(out.logits, teacher_out.logits, V2.temperature))
    standardise = lambda x: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)  # noqa: E731
    feat = float(feature_mse(standardise(model.adapter.proj(out.fused)), standardise(teacher_out.fused)))
    raw = float(feature_mse(model.adapter.proj(out.fused), teacher_out.fused))  # feature_norm="none"
    cases = {SCRATCH: ce, V1: ce + V1.alpha * kd, V2: ce + V2.alpha * kd + V2.beta * feat,
             replace(V2, feature_norm="none"): ce + V2.alpha * kd + V2.beta * raw}
    for config, expected in cases.items():
        loss, parts = student_loss(out, teacher_out, y, model.adapter, config)
        assert float(loss) == pytest.approx(expected, rel=1e-5), config.method
        assert parts["ce"] == pytest.approx(ce, rel=1e-5) and parts["kd"] == pytest.approx(kd, rel=1e-5)
        assert math.isnan(parts["feat"]) == (config.beta == 0)
    loss, parts = student_loss(out, None, y, None, SCRATCH)
    assert float(loss) == pytest.approx(ce, rel=1e-5) and math.isnan(parts["kd"])
    assert 0 <= feat <= 4, "standardised tokens: MSE = 2 (1 - r) is in [0, 4]"
    with pytest.raises(ValueError, match="teacher"):
        student_loss(out, None, y, None, V1)
    with pytest.raises(ValueError, match="FeatureAdapter"):
        student_loss(out, teacher_out, y, None, V2)


def test_config_presets_and_validation():
    assert [PRESETS[k].method for k in ("scratch", "v1", "v2")] == ["scratch", "v1", "v2"]
    assert (SCRATCH.alpha, SCRATCH.beta) == (0, 0) and V1.alpha > 0 == V1.beta and V2.alpha > 0 and V2.beta > 0
    assert not SCRATCH.needs_teacher and V1.needs_teacher
    for bad in (dict(alpha=-1), dict(temperature=0), dict(feature_loss="l1"), dict(adapter="conv")):
        with pytest.raises(ValueError):
            DistillConfig(**bad)


# --- linear CKA -----------------------------------------------------------------------------------

def test_linear_cka_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12))
    y = x @ rng.normal(size=(12, 20)) + 0.5 * rng.normal(size=(500, 20))  # related, wider
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x @ q, x) == pytest.approx(1.0)  # orthogonal transform
    assert linear_cka(3.7 * x, y) == pytest.approx(linear_cka(x, y))  # isotropic scaling
    assert linear_cka(x + 5.0, y) == pytest.approx(linear_cka(x, y))  # centring
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert linear_cka(x, y) > 0.6
    assert linear_cka(x, rng.normal(size=(500, 20))) < 0.1  # independent features
    anisotropic = x * np.r_[10.0, np.ones(11)]
    assert linear_cka(anisotropic, x) < 0.9  # not invariant to arbitrary linear maps
    as_tokens = torch.from_numpy(x).float().reshape(50, 10, 12)  # (B, L, F): tokens are examples
    assert linear_cka(as_tokens, torch.from_numpy(x)) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, y[:10])


# --- distill on a tiny planted fold ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fold():
    train, val = planted(seed=0), planted(n_trials=6, seed=1)
    seed_everything(0)
    teacher = fit(FusionTeacher(MODEL), train, val, "valence", TRAIN).model
    teacher.zero_grad(set_to_none=True)  # fit leaves the last step's gradients
    return teacher, train, val


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_teacher_targets_equal_live_outputs(fold):
    teacher, train, _ = fold
    targets = teacher_targets(teacher, train, batch_size=7)
    idx = torch.tensor([5, 0, 17])
    data = to_tensors(train, None)
    with torch.no_grad():
        live = teacher(eeg=data["eeg"][idx], eog=data["eog"][idx])
    got = targets.take(idx)
    assert torch.allclose(got.logits, live.logits, atol=1e-6) and torch.allclose(got.fused, live.fused, atol=1e-6)
    assert not targets.fused.requires_grad


def test_no_gradient_reaches_the_teacher(fold):
    teacher, train, val = fold
    before = snapshot(teacher)
    flags = [p.requires_grad for p in teacher.parameters()]
    result = distill(teacher, train, val, "valence", V2, TRAIN)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())  # BN statistics too
    assert all(p.grad is None for p in teacher.parameters())
    assert [p.requires_grad for p in teacher.parameters()] == flags and not teacher.training
    assert not set(map(id, result.student.parameters())) & set(map(id, teacher.parameters()))


def test_teaching_step_updates_student_and_adapter_only(fold):
    teacher, train, _ = fold
    seed_everything(0)
    model = build_student(MODEL, V2)
    opt, _ = make_optimizer(model, TRAIN, 1)
    data = to_tensors(train, "valence")
    with torch.no_grad():
        t_out = teacher(eeg=data["eeg"][:16], eog=data["eog"][:16])
    s0, a0, t0 = snapshot(model.student), snapshot(model.adapter), snapshot(teacher)
    loss, logits, parts = teaching_step(model, opt, data["eog"][:16], data["y"][:16], t_out, V2)
    assert logits.shape == (16, 2) and set(parts) == {"ce", "kd", "feat"} and loss.ndim == 0
    assert not all(torch.equal(v, s0[k]) for k, v in model.student.state_dict().items())
    assert not torch.equal(model.adapter.proj.weight, a0["proj.weight"])
    assert all(torch.equal(v, t0[k]) for k, v in teacher.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_variations_train_and_improve_over_initialisation(fold, name):
    teacher, train, val = fold
    config = PRESETS[name]
    seed_everything(TRAIN.seed)
    untrained = build_student(MODEL, config).student
    result = distill(teacher, train, val, "valence", config, TRAIN)
    h = result.history
    assert {"ce", "kd", "feat", "cka", "val_acc"} <= set(h.columns) and len(h) == TRAIN.epochs
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    assert h.feat.isna().all() == (name == "v1") and h.kd.notna().all()
    if name == "v2":
        assert h.feat.iloc[-1] < h.feat.iloc[0]
    acc0 = evaluate(untrained, val, "valence")["accuracy"]
    acc = evaluate(result.student, val, "valence")["accuracy"]
    assert acc >= 0.8 and acc > acc0
    assert isinstance(result.student, EOGStudent) and not result.student.training
    assert 0.0 <= result.cka_init <= 1.0 and h.cka.between(0, 1).all()


def test_distill_is_deterministic(fold):
    teacher, train, val = fold
    a = distill(teacher, train, val, "valence", V2, TRAIN)
    b = distill(teacher, train, val, "valence", V2, TRAIN)
    assert states_equal(a.student, b.student) and states_equal(a.adapter, b.adapter)
    cols = [c for c in a.history.columns if c != "seconds"]
    assert a.history[cols].equals(b.history[cols]) and a.cka_init == b.cka_init


def test_scratch_needs_no_teacher_and_ignores_it(fold):
    teacher, train, val = fold
    alone = distill(None, train, val, "valence", SCRATCH, TRAIN, model_config=MODEL)
    beside = distill(teacher, train, val, "valence", SCRATCH, TRAIN)
    assert states_equal(alone.student, beside.student)  # the teacher changes nothing but the logs
    assert alone.history.cka.isna().all() and beside.history.cka.notna().all()
    with pytest.raises(ValueError, match="needs the teacher"):
        distill(None, train, val, "valence", V1, TRAIN, model_config=MODEL)


def test_init_from_teacher_switch(fold):
    teacher, *_ = fold
    model = build_student(MODEL, replace(V2, init_from_teacher=True), teacher)
    assert isinstance(model, StudentWithAdapter)
    assert all(torch.equal(a, b) for a, b in zip(model.student.eog.state_dict().values(),
                                                 teacher.eog.state_dict().values()))
    with pytest.raises(ValueError, match="needs the teacher"):
        build_student(MODEL, replace(V2, init_from_teacher=True))
