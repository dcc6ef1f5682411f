"""FeedbackConfig.teacher_ce: the switch that drops the teacher's own CE from its feedback loss (notebook 04).

The default (``teacher_ce=True``) must be bit-identical to the feedback step as it was before the
switch existed; ``teacher_ce=False`` must make the update follow the meta term alone.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from test_feedback import state, tiny_problem  # noqa: E402  (float64 tiny teacher, student, two batches)

from kdlib.distill import V3, FeedbackConfig, feedback_parameters, feedback_step, meta_objective  # noqa: E402
from kdlib.distill.distill import distill_batched  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def step_before_the_switch(teacher, student, adapter, optimizer, batch, fb_batch, config, fb):
    """The teacher's update exactly as kdlib computed it before ``teacher_ce`` existed (reference)."""
    teacher.eval()
    tparams = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    terms = meta_objective(teacher, student, adapter, batch, fb_batch, config, fb)
    g_ce = torch.autograd.grad(terms.teacher_ce, tparams, retain_graph=True, allow_unused=True)
    g_fb = torch.autograd.grad(fb.lam * terms.lookahead_ce, tparams, allow_unused=True)
    for p, a, b in zip(tparams, g_ce, g_fb):
        p.grad = sum(g for g in (a, b) if g is not None) if (a is not None or b is not None) else None
    if fb.teacher_grad_clip is not None:
        nn.utils.clip_grad_norm_(tparams, fb.teacher_grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(terms.teacher_ce.detach() + fb.lam * terms.lookahead_ce.detach())


def test_the_default_keeps_the_teachers_ce():
    assert FeedbackConfig().teacher_ce is True
    assert V3.feedback_config.teacher_ce is True


@pytest.mark.parametrize("scope", ["fusion", "all"])
def test_the_default_update_is_bit_identical_to_the_step_before_the_switch(scope):
    fb = FeedbackConfig(lam=3.0, lookahead_lr=0.5, teacher_lr=1e-2, teacher_scope=scope)
    teacher, model, batch, fb_batch = tiny_problem()
    twin = tiny_problem()[0]
    opt = torch.optim.Adam(feedback_parameters(teacher, scope), lr=fb.teacher_lr)
    opt_twin = torch.optim.Adam(feedback_parameters(twin, scope), lr=fb.teacher_lr)
    for _ in range(3):  # several steps: Adam's moments too
        row = feedback_step(teacher, model.student, model.adapter, opt, batch, fb_batch, V3, fb)
        meta = step_before_the_switch(twin, model.student, model.adapter, opt_twin, batch, fb_batch, V3, fb)
        assert row["meta_loss"] == meta
    after, want = state(teacher), state(twin)
    assert all(torch.equal(after[k], want[k]) for k in want)
    assert row["teacher_update"] > 0 and row["teacher_ce_grad"] > 0


def test_without_the_teachers_ce_the_update_is_the_meta_term_alone():
    fb = FeedbackConfig(lam=2.0, lookahead_lr=0.5, teacher_lr=1.0, teacher_grad_clip=None, teacher_ce=False)
    teacher, model, batch, fb_batch = tiny_problem()
    params = feedback_parameters(teacher, "all")
    terms = meta_objective(teacher, model.student, model.adapter, batch, fb_batch, V3, fb)
    meta_grad = torch.autograd.grad(fb.lam * terms.lookahead_ce, params, retain_graph=True, allow_unused=True)
    ce_grad = torch.autograd.grad(terms.teacher_ce, params, allow_unused=True)
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)  # plain SGD, lr 1: the update is minus the gradient
    row = feedback_step(teacher, model.student, model.adapter, opt, batch, fb_batch, V3, fb)
    for p, b, g in zip(params, before, meta_grad):
        want = b if g is None else b - g
        assert torch.allclose(p.detach(), want, atol=1e-12, rtol=0)
    moved_by_ce = [g for g in ce_grad if g is not None and g.abs().max() > 1e-8]
    assert moved_by_ce, "the teacher's CE has a gradient here: the test would not tell the two apart"
    assert row["teacher_ce_grad"] == 0.0 and row["feedback_grad"] > 0
    assert row["meta_loss"] == pytest.approx(fb.lam * row["lookahead_ce"], abs=1e-12)
    assert row["teacher_ce"] == pytest.approx(float(terms.teacher_ce.detach()), abs=1e-12)  # still logged


def test_switching_the_ce_off_changes_the_update():
    on, off = FeedbackConfig(lam=2.0, teacher_lr=1e-2), FeedbackConfig(lam=2.0, teacher_lr=1e-2, teacher_ce=False)
    moved = []
    for fb in (on, off):
        teacher, model, batch, fb_batch = tiny_problem()
        opt = torch.optim.Adam(feedback_parameters(teacher, "all"), lr=fb.teacher_lr)
        feedback_step(teacher, model.student, model.adapter, opt, batch, fb_batch, V3, fb)
        moved.append(state(teacher))
    assert any(not torch.equal(moved[0][k], moved[1][k]) for k in moved[0])


def test_no_loss_at_all_is_refused():
    with pytest.raises(ValueError, match="teacher_ce=False needs lam > 0"):
        FeedbackConfig(lam=0.0, teacher_ce=False)
    FeedbackConfig(lam=0.0)  # the teacher's CE alone is fine (exercise 1 of notebook 04)
    with pytest.raises(ValueError, match="teacher_ce must be True or False"):
        FeedbackConfig(teacher_ce="no")


def test_the_batched_trainer_refuses_feedback_rather_than_ignoring_the_switch():
    config = replace(V3, feedback_config=FeedbackConfig(teacher_ce=False))
    with pytest.raises(ValueError, match="not batched"):
        distill_batched([None], [None], [None], "valence", config)


def test_the_switch_enters_no_resume_record():
    """``kdlib reproduce`` resumes by its config.json (the ProtocolConfig, methods by name) and the data's
    fingerprint: no DistillConfig or FeedbackConfig field is recorded, so the new field changes no
    record of an existing run."""
    from kdlib.evaluate import ProtocolConfig

    record = str(ProtocolConfig().to_dict())
    assert "teacher_ce" not in record and "feedback_config" not in record and "lookahead_lr" not in record
