"""kdlib.distill.feedback: variation 3's teaching and feedback phases (notebook 04)."""

from __future__ import annotations

import copy
import inspect
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train import MODEL, QUICK, planted, states_equal  # noqa: E402  (the same tiny planted fold)

from kdlib.distill import (PRESETS, V2, V3, DistillConfig, FeedbackConfig, GuidanceConfig, branch_outputs,  # noqa: E402
                           build_student, distill, feedback_batch, feedback_parameters, feedback_step,
                           lookahead_params, meta_objective, metric_guidance, student_loss, teacher_outputs)
from kdlib.distill import feedback as fbmod  # noqa: E402
from kdlib.models import FusionTeacher, LateFusionTeacher, ModelConfig  # noqa: E402
from kdlib.repro import seed_everything  # noqa: E402
from kdlib.train import Batch, fit  # noqa: E402

TRAIN = replace(QUICK, epochs=3)
TINY = ModelConfig(n_eeg=3, n_eog=2, n_samples=16, fs=16.0, n_filters=2, kernel=4, stride=4, d_model=4, n_heads=1,
                   n_layers=2, mlp_ratio=1, gate_hidden=4, dropout=0.0, attn_dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fold():
    """A planted fold (teaching, validation, quiz windows) and its (briefly) trained teacher."""
    tr, va, qz = planted(seed=0), planted(n_trials=6, seed=1), planted(n_trials=6, seed=2)
    seed_everything(0)
    return tr, va, qz, fit(FusionTeacher(MODEL), tr, va, "valence", QUICK).model


def tiny_problem(seed: int = 0):
    """Float64 tiny teacher (eval) and student (train mode: batch-norm on batch statistics), two batches."""
    seed_everything(seed)
    teacher = FusionTeacher(TINY).double().eval()
    model = build_student(TINY, V3).double().train()
    g = torch.Generator().manual_seed(seed)

    def batch(n):
        return Batch(torch.randn(n, 3, 16, generator=g, dtype=torch.float64),
                     torch.randn(n, 2, 16, generator=g, dtype=torch.float64),
                     torch.randint(0, 2, (n,), generator=g), torch.arange(n))
    return teacher, model, batch(8), batch(8)


def state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the meta-gradient -------------------------------------------------------------------------

def test_lookahead_is_one_sgd_step_of_the_student_loss():
    teacher, model, b, _ = tiny_problem()
    fb = FeedbackConfig(lookahead_lr=0.3)
    t_out = teacher(eeg=b.eeg, eog=b.eog)
    new = lookahead_params(model.student, model.adapter, t_out, b.eog, b.y, V3, fb.lookahead_lr)
    loss, _ = student_loss(model.student(eog=b.eog), t_out, b.y, model.adapter, V3)
    names, params = zip(*model.student.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert list(new) == list(names)
    for n, p, g in zip(names, params, grads):
        expected = p if g is None else p - 0.3 * g
        assert torch.allclose(new[n], expected, atol=1e-12), n
    assert any(not torch.equal(new[n], p) for n, p in zip(names, params))


def assert_meta_gradient_matches_finite_differences(p, objective):
    """``objective() -> (look-ahead CE, total teacher loss)``: autograd of both with respect to
    ``p`` equals central differences at three of its entries."""
    meta, total = objective()
    g_meta = torch.autograd.grad(meta, p, retain_graph=True)[0]  # through the look-ahead only
    g_total = torch.autograd.grad(total, p)[0]
    eps = 1e-6
    for flat in (0, p.numel() // 2, p.numel() - 1):
        idx = np.unravel_index(flat, p.shape)
        old = p.detach()[idx].item()
        vals = []
        for sign in (1, -1):
            p.data[idx] = old + sign * eps  # the look-ahead itself needs autograd: no torch.no_grad here
            vals.append([v.detach().item() for v in objective()])
        p.data[idx] = old
        fd_meta, fd_total = ((vals[0][i] - vals[1][i]) / (2 * eps) for i in (0, 1))
        assert abs(fd_meta) > 1e-8, "the look-ahead term must depend on this teacher parameter"
        assert g_meta[idx].item() == pytest.approx(fd_meta, rel=1e-5, abs=1e-10)
        assert g_total[idx].item() == pytest.approx(fd_total, rel=1e-5, abs=1e-10)


@pytest.mark.parametrize("name", ["head.fc.weight", "eeg.tokenizer.temporal.weight", "fusion.gating.scores.0.fc1.weight"])
def test_meta_gradient_matches_finite_differences(name):
    teacher, model, b, f = tiny_problem()
    fb = FeedbackConfig(lam=1.0, lookahead_lr=0.5)

    def objective():
        t = meta_objective(teacher, model.student, model.adapter, b, f, V3, fb)
        return t.lookahead_ce, t.teacher_ce + fb.lam * t.lookahead_ce

    assert_meta_gradient_matches_finite_differences(dict(teacher.named_parameters())[name], objective)


# --- each phase changes one model ----------------------------------------------------------------

def test_feedback_step_changes_the_teacher_only():
    teacher, model, b, f = tiny_problem()
    t0, s0 = state(teacher), state(model)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    row = feedback_step(teacher, model.student, model.adapter, opt, b, f, V3, V3.feedback_config)
    assert same(s0, state(model)), "the feedback phase must not touch the student (parameters or buffers)"
    assert all(p.grad is None for p in model.parameters())
    assert not same(t0, state(teacher)) and row["teacher_update"] > 0
    assert row["feedback_grad"] > 0 and row["teacher_ce_grad"] > 0
    assert row["meta_loss"] == pytest.approx(row["teacher_ce"] + row["lookahead_ce"])


def test_teaching_phase_changes_the_student_only(fold):
    tr, va, qz, teacher = fold
    never = replace(V3, feedback_config=replace(V3.feedback_config, every_k=10_000))  # no feedback step at all
    res = distill(teacher, tr, va, "valence", never, TRAIN, quiz=qz)
    assert (res.steps["phase"] == "teaching").all() and (res.steps["teacher_update"] == 0).all()
    assert states_equal(res.teacher, teacher), "teaching steps must leave the teacher (and its BN stats) as is"
    seed_everything(TRAIN.seed)
    assert not states_equal(res.student, build_student(MODEL, never, teacher).student)


def test_v3_trains_a_copy_and_leaves_the_callers_teacher_bit_identical(fold):
    tr, va, qz, teacher = fold
    before = state(teacher)
    res = distill(teacher, tr, va, "valence", PRESETS["v3"], TRAIN, quiz=qz)
    assert same(before, state(teacher))
    assert res.teacher is not teacher and not states_equal(res.teacher, teacher)
    fb_rows = res.steps[res.steps["phase"] == "feedback"]
    k = V3.feedback_config.every_k
    assert list(fb_rows["step"]) == list(range(k + 1, len(res.steps) + 1, k))  # after every k teaching steps
    assert (fb_rows["teacher_update"] > 0).all()
    for col in ("student_loss", "teacher_ce_batch", "student_acc", "teacher_acc", "alpha", "temperature",
                "lookahead_ce", "teacher_update"):
        assert col in res.steps.columns
    assert {"teacher_val_acc", "cka", "alpha", "temperature"} <= set(res.history.columns)
    assert res.config.method == "v3" and 1 <= res.best_epoch <= TRAIN.epochs


# --- data: feedback batches come from the quiz only ----------------------------------------------

def test_distill_takes_no_test_data():
    assert list(inspect.signature(distill).parameters) == [
        "teacher", "train", "val", "task", "config", "train_config", "model_config", "desc", "quiz"]


def test_meta_feedback_refuses_to_run_without_quiz_windows(fold):
    tr, va, qz, teacher = fold
    with pytest.raises(ValueError, match="quiz"):
        distill(teacher, tr, va, "valence", PRESETS["v3"], TRAIN)


def test_feedback_batches_are_quiz_windows(fold, monkeypatch):
    tr, va, qz, teacher = fold
    seen = []
    real = fbmod.feedback_step

    def spy(teacher_, student, adapter, opt, batch, fb_batch, *args, **kw):
        seen.append((batch.index.clone(), fb_batch.index.clone(), fb_batch.eog.clone()))
        return real(teacher_, student, adapter, opt, batch, fb_batch, *args, **kw)

    monkeypatch.setattr(fbmod, "feedback_step", spy)
    distill(teacher, tr, va, "valence", PRESETS["v3"], TRAIN, quiz=qz)
    assert seen, "the spy saw no feedback step"
    quiz_rows = {r.tobytes() for r in qz.eog}
    other_rows = {r.tobytes() for r in np.concatenate([tr.eog, va.eog])}
    for idx, fb_idx, eog in seen:
        assert fb_idx.max() < len(qz)
        assert torch.equal(eog, torch.from_numpy(qz.eog[fb_idx.numpy()]))
        assert all(r.tobytes() in quiz_rows and r.tobytes() not in other_rows for r in eog.numpy())


def test_feedback_batch_draws_quiz_windows_and_is_seeded():
    a = feedback_batch(40, 16, torch.Generator().manual_seed(3))
    b = feedback_batch(40, 16, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len(a) == 16 and a.max() < 40 and len(set(a.tolist())) == 16
    assert len(feedback_batch(5, 16, torch.Generator().manual_seed(3))) == 5
    with pytest.raises(ValueError, match="quiz"):
        feedback_batch(0, 16, torch.Generator())


# --- randomness: what only variation 3 does has streams of its own ------------------------------------

DROPOUT_MODEL = replace(MODEL, dropout=0.3, attn_dropout=0.1)  # the look-ahead then draws random numbers


@pytest.fixture(scope="module")
def dropout_fold():
    tr, va, qz = planted(seed=0), planted(n_trials=6, seed=1), planted(n_trials=6, seed=2)
    seed_everything(0)
    return tr, va, qz, fit(FusionTeacher(DROPOUT_MODEL), tr, va, "valence", QUICK).model


def inert(config: DistillConfig) -> DistillConfig:
    """Variation 3 with its feedback made inert: no meta term, a teacher that cannot change."""
    return replace(config, feedback_config=replace(config.feedback_config, lam=0.0, teacher_lr=0.0, every_k=2))


def test_v3_with_inert_feedback_is_bit_identical_to_v2(dropout_fold):
    tr, va, qz, teacher = dropout_fold
    v2 = distill(teacher, tr, va, "valence", V2, TRAIN)
    v3 = distill(teacher, tr, va, "valence", inert(V3), TRAIN, quiz=qz)
    assert (v3.steps["phase"] == "feedback").sum() >= 3, "the inert run must still make feedback steps"
    assert states_equal(v3.student, v2.student) and states_equal(v3.adapter, v2.adapter)
    from kdlib.train import predict
    assert np.array_equal(predict(v3.student, va), predict(v2.student, va))
    assert v3.feedback["teacher_dp"] == 0.0 and v3.feedback["feedback_steps"] >= 3


def test_the_inert_check_can_fail_without_the_forked_stream(dropout_fold, monkeypatch):
    """The same comparison with fork_rng disabled: the look-ahead's dropout then shifts the student's stream."""
    import contextlib
    tr, va, qz, teacher = dropout_fold
    monkeypatch.setattr(torch.random, "fork_rng", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # nor reseeded inside the feedback step
    v2 = distill(teacher, tr, va, "valence", V2, TRAIN)
    v3 = distill(teacher, tr, va, "valence", inert(V3), TRAIN, quiz=qz)
    assert not states_equal(v3.student, v2.student)


def test_real_feedback_moves_the_teacher_and_logs_it(dropout_fold):
    tr, va, qz, teacher = dropout_fold
    strong = replace(V3, feedback_config=replace(V3.feedback_config, every_k=2, teacher_lr=1e-2))
    res = distill(teacher, tr, va, "valence", strong, TRAIN, quiz=qz)
    assert res.feedback["feedback_steps"] == (res.steps["phase"] == "feedback").sum() > 0
    assert res.feedback["teacher_dp"] > 0 and 0 <= res.feedback["teacher_flips"] <= 1
    assert res.history["feedback_steps"].iloc[-1] == res.feedback["feedback_steps"]
    summary = res.summary()
    assert {"share_ce", "share_kd", "share_feat", "feedback_steps", "teacher_dp"} <= set(summary)


# --- the metric-driven variant -----------------------------------------------------------------------

def test_metric_guidance_moves_alpha_and_t_with_the_gap():
    fb = GuidanceConfig(alpha_gain=2.0, temperature_gain=1.0, scale_range=(0.5, 1.5))
    assert metric_guidance(0.5, 2.0, 0.7, 0.7, fb) == (0.5, 2.0)
    a_up, t_up = metric_guidance(0.5, 2.0, 0.8, 0.7, fb)  # teacher ahead: more and softer guidance
    a_dn, t_dn = metric_guidance(0.5, 2.0, 0.6, 0.7, fb)  # student ahead: less and sharper guidance
    assert a_up == pytest.approx(0.5 * 1.2) and t_up == pytest.approx(2.0 * 1.1)
    assert a_dn == pytest.approx(0.5 * 0.8) and t_dn == pytest.approx(2.0 * 0.9)
    assert metric_guidance(0.5, 2.0, 1.0, 0.0, fb) == (0.75, 3.0)  # clipped at 1.5x
    assert metric_guidance(0.5, 2.0, 0.0, 1.0, fb) == (0.25, 1.0)  # clipped at 0.5x


def test_metric_variant_keeps_the_teacher_and_follows_the_gap(fold):
    tr, va, qz, teacher = fold
    config = replace(V3, method="v3-metric", feedback="metric")
    res = distill(teacher, tr, va, "valence", config, TRAIN)
    assert states_equal(res.teacher, teacher) and (res.steps["phase"] == "teaching").all()
    h = res.history
    assert h["alpha"].iloc[0] == V3.alpha and h["temperature"].iloc[0] == V3.temperature
    run_t = run_s = None
    m = config.guidance_config.momentum
    for i in range(len(h) - 1):  # the guidance of epoch i + 1 follows the running gap after epoch i
        ema = lambda r, x: x if r is None else m * r + (1 - m) * x  # noqa: E731
        run_t, run_s = ema(run_t, h["teacher_val_acc"].iloc[i]), ema(run_s, h["val_acc"].iloc[i])
        a, t = metric_guidance(V3.alpha, V3.temperature, run_t, run_s, config.guidance_config)
        assert h["alpha"].iloc[i + 1] == pytest.approx(a) and h["temperature"].iloc[i + 1] == pytest.approx(t)


# --- configuration and reproducibility ---------------------------------------------------------------

def test_v3_is_v2_with_feedback():
    assert PRESETS["v3"] is V3 and V3 == replace(V2, method="v3", feedback="meta")
    assert V2.feedback == "none" and {"scratch", "v1", "v2", "v3"} <= set(PRESETS)
    with pytest.raises(ValueError):
        DistillConfig(feedback="always")
    with pytest.raises(ValueError):
        replace(V3, alpha=0.0, beta=0.0)
    with pytest.raises(ValueError):
        FeedbackConfig(every_k=0)


def test_same_seed_gives_identical_logs(fold):
    tr, va, qz, teacher = fold
    a = distill(teacher, tr, va, "valence", V3, TRAIN, quiz=qz)
    b = distill(teacher, tr, va, "valence", V3, TRAIN, quiz=qz)
    drop = ["feedback_s"]
    assert a.steps.drop(columns=drop).equals(b.steps.drop(columns=drop))
    assert a.history.drop(columns=["seconds"]).equals(b.history.drop(columns=["seconds"]))
    assert states_equal(a.student, b.student) and states_equal(a.teacher, b.teacher)
    c = distill(teacher, tr, va, "valence", V3, replace(TRAIN, seed=1), quiz=qz)
    assert not a.steps.drop(columns=drop).equals(c.steps.drop(columns=drop))


# --- teacher_scope="fusion": frozen branches, cached once; fusion and head learn ---------------------

FUSION_ONLY = ("fusion.", "head.")  # parameter-name prefixes of what the feedback updates under "fusion"


@pytest.mark.parametrize("kind", ["fusion", "late"])
def test_cached_branches_then_fuse_equal_a_full_teacher_forward(kind):
    seed_everything(0)
    teacher = (FusionTeacher if kind == "fusion" else LateFusionTeacher)(MODEL).eval()
    g = torch.Generator().manual_seed(0)
    eeg = torch.randn(10, MODEL.n_eeg, MODEL.n_samples, generator=g)  # (N, n_eeg, T)
    eog = torch.randn(10, MODEL.n_eog, MODEL.n_samples, generator=g)  # (N, n_eog, T)
    cache = branch_outputs(teacher, eeg, eog, batch_size=4)  # cached in other batches than they are read
    assert len(cache.eeg_depths) == len(cache.eog_depths) == MODEL.n_layers
    idx = torch.tensor([7, 0, 3, 9, 4])
    cached = teacher_outputs(teacher, None, None, cache.take(idx))
    with torch.no_grad():
        full = teacher(eeg=eeg[idx], eog=eog[idx])
    for name in ("logits", "fused", "pooled"):
        assert torch.allclose(getattr(cached, name), getattr(full, name), rtol=0, atol=1e-6), name


def test_feedback_parameters_are_fusion_and_head_or_all():
    teacher = FusionTeacher(TINY)
    names = {id(p): n for n, p in teacher.named_parameters()}
    fusion = [names[id(p)] for p in feedback_parameters(teacher, "fusion")]
    assert fusion and all(n.startswith(FUSION_ONLY) for n in fusion)
    assert sorted(fusion) == sorted(n for n in names.values() if n.startswith(FUSION_ONLY))
    assert len(feedback_parameters(teacher, "all")) == len(names)
    assert V3.feedback_config.teacher_scope == "fusion"
    with pytest.raises(ValueError):
        FeedbackConfig(teacher_scope="branches")


@pytest.mark.parametrize("name", ["head.fc.weight", "fusion.gating.scores.0.fc1.weight",
                                  "fusion.gating.scores.0.bn2.weight"])
def test_meta_gradient_with_cached_branches_matches_finite_differences(name):
    teacher, model, b, f = tiny_problem()
    fb = FeedbackConfig(lam=1.0, lookahead_lr=0.5, teacher_scope="fusion")
    with torch.no_grad():
        branches = teacher.branches(b.eeg, b.eog)  # constants: perturbing fusion/head leaves them as they are
    p = dict(teacher.named_parameters())[name]
    branch_p = teacher.eeg.tokenizer.temporal.weight

    def objective():
        t = meta_objective(teacher, model.student, model.adapter, b, f, V3, fb, branches=branches)
        return t.lookahead_ce, t.teacher_ce + fb.lam * t.lookahead_ce

    _, total = objective()
    assert torch.autograd.grad(total, branch_p, allow_unused=True)[0] is None  # branches: no gradient
    assert_meta_gradient_matches_finite_differences(p, objective)


def test_feedback_step_with_cached_branches_changes_fusion_and_head_only():
    teacher, model, b, f = tiny_problem()
    t0, s0 = state(teacher), state(model)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)  # even an optimiser over all of it
    branches = branch_outputs(teacher, b.eeg, b.eog)
    row = feedback_step(teacher, model.student, model.adapter, opt, b, f, V3, V3.feedback_config, branches=branches)
    t1 = state(teacher)
    assert same(s0, state(model)) and row["teacher_update"] > 0
    assert all(torch.equal(t0[k], t1[k]) for k in t0 if not k.startswith(FUSION_ONLY)), "branches must not move"
    for prefix in FUSION_ONLY:
        assert any(not torch.equal(t0[k], t1[k]) for k in t0 if k.startswith(prefix)), prefix


@pytest.mark.parametrize("scope", ["fusion", "all"])
def test_v3_scope_decides_which_parts_of_the_teacher_learn(fold, scope):
    tr, va, qz, teacher = fold
    config = replace(V3, feedback_config=replace(V3.feedback_config, teacher_scope=scope))
    res = distill(teacher, tr, va, "valence", config, TRAIN, quiz=qz)
    assert (res.steps["phase"] == "feedback").any()
    before, after = state(teacher), state(res.teacher)
    branches_same = all(torch.equal(before[k], after[k]) for k in before if k.startswith(("eeg.", "eog.")))
    assert branches_same == (scope == "fusion")
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("fusion."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_scope_fusion_needs_a_teacher_with_branches(fold):
    tr, va, qz, _ = fold

    class Plain(torch.nn.Module):  # a teacher without .branches / .fuse
        config = MODEL

        def __init__(self):
            super().__init__()
            self.inner = FusionTeacher(MODEL)

        def forward(self, eeg, eog):
            return self.inner(eeg=eeg, eog=eog)

    with pytest.raises(ValueError, match="teacher_scope"):
        distill(Plain(), tr, va, "valence", V3, TRAIN, quiz=qz)


def test_each_feedback_mode_reads_only_its_own_knobs(fold):
    """"meta" ignores GuidanceConfig and "metric" ignores FeedbackConfig: changing the other mode's
    knobs leaves every logged number bit-identical."""
    tr, va, qz, teacher = fold
    drop = ["feedback_s"]
    meta = replace(V3, feedback_config=replace(V3.feedback_config, every_k=2))
    other = replace(meta, guidance_config=GuidanceConfig(alpha_gain=9.0, momentum=0.9, scale_range=(0.5, 1.5)))
    a, b = (distill(teacher, tr, va, "valence", c, TRAIN, quiz=qz) for c in (meta, other))
    assert (a.steps["phase"] == "feedback").any()
    assert a.steps.drop(columns=drop).equals(b.steps.drop(columns=drop))
    metric = replace(V3, feedback="metric")
    other = replace(metric, feedback_config=FeedbackConfig(every_k=1, lam=5.0, teacher_lr=1e-2))
    a, b = (distill(teacher, tr, va, "valence", c, TRAIN) for c in (metric, other))
    assert a.history.drop(columns=["seconds"]).equals(b.history.drop(columns=["seconds"]))
    assert a.steps.drop(columns=drop).equals(b.steps.drop(columns=drop))
