"""kdlib.train's loop in pieces: the step hook, one inference helper, class weights, epoch means."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from test_train import MODEL, QUICK, planted, states_equal, teacher

from kdlib.distill import branch_outputs
from kdlib.models import EOGStudent, FusionTeacher
from kdlib.train import (BestEpoch, EpochMeans, call_model, ce_loss, ce_weights, class_weights, fit, infer,
                         loss_step, to_tensors, validate)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CFG = replace(QUICK, epochs=2, class_weight=None)


@pytest.fixture(scope="module")
def data():
    return planted(seed=0), planted(n_trials=6, seed=1)


def test_a_step_written_out_is_the_default_step(data):
    """The default step is loss, then fit's optimiser step: a hand-written step gives the same weights."""
    train, val = data
    calls = []

    def step(model, batch, update):
        logits = call_model(model, batch.eeg, batch.eog).logits
        loss = torch.nn.functional.cross_entropy(logits, batch.y)
        update(loss)
        calls.append(len(batch.y))
        return loss, logits, {"half_loss": float(loss.detach()) / 2}

    default = fit(teacher(), train, val, "valence", CFG)
    custom = fit(teacher(), train, val, "valence", CFG, step=step)
    assert states_equal(default.model, custom.model)
    assert sum(calls) == CFG.epochs * len(train)
    h = custom.history
    np.testing.assert_allclose(h["half_loss"], h["train_loss"] / 2, rtol=1e-12)  # parts averaged like the loss
    np.testing.assert_array_equal(h["val_loss"], default.history["val_loss"])


def test_a_step_that_skips_the_update_leaves_the_model(data):
    train, val = data
    model = teacher()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    res = fit(model, train, val, "valence", CFG, step=lambda m, b, update: (*ce_loss()(m, b), {}))
    after = res.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_validate_scores_the_restored_best_epoch_as_fit_did(data):
    train, val = data
    res = fit(teacher(), train, val, "valence", replace(CFG, epochs=3))
    row = validate(res.model, to_tensors(val, "valence"), None, 64)
    best = res.history.loc[res.history["epoch"] == res.best_epoch].iloc[0]
    assert row == {k: best[k] for k in ("val_loss", "val_acc", "val_f1")}
    assert all(np.isnan(v) for v in validate(res.model, None).values())


def test_loss_step_passes_parts_through():
    seen = []
    step = loss_step(lambda m, b: (torch.tensor(2.0), torch.zeros(1, 2), {"x": 1.0}))
    assert step(None, None, seen.append)[2] == {"x": 1.0} and float(seen[0]) == 2.0
    assert loss_step(lambda m, b: (torch.tensor(1.0), torch.zeros(1, 2)))(None, None, seen.append)[2] == {}


def test_infer_over_windows_and_over_cached_branch_outputs_agree():
    ws = planted(n_trials=5, seed=3)
    torch.manual_seed(0)
    model = FusionTeacher(MODEL).eval()
    data = to_tensors(ws, None, ("eeg", "eog"))
    logits = infer(model, data, batch_size=7)  # (N, C), batches of 7
    with torch.no_grad():
        whole = model(eeg=data["eeg"], eog=data["eog"]).logits
    assert logits.shape == (len(ws), 2) and not logits.requires_grad
    torch.testing.assert_close(logits, whole)
    branches = branch_outputs(model, data["eeg"], data["eog"], batch_size=6)
    from_branches = infer(model, branches, batch_size=5, call=lambda t, b: t.fuse(b))
    torch.testing.assert_close(from_branches, logits)
    fused = infer(EOGStudent(MODEL), {"eeg": None, "eog": data["eog"]}, 4, keep=lambda out: (out.fused, out.pooled))
    assert fused[0].shape[:1] == fused[1].shape[:1] == (len(ws),)


def test_ce_weights_serve_every_setting():
    y = np.array([0, 0, 0, 1])
    np.testing.assert_array_equal(ce_weights("balanced", y, 2), class_weights(y, 2))
    assert ce_weights(None, y, 2) is None
    np.testing.assert_array_equal(ce_weights((1.0, 3.0), y, 2), np.array([1, 3], np.float32))
    with pytest.raises(ValueError, match="class_weight needs 2 values"):
        ce_weights((1.0, 2.0, 3.0), y, 2)


def test_epoch_means_weigh_batches_by_their_windows():
    m = EpochMeans()
    m.add({"a": 1.0, "b": float("nan")}, 3)
    m.add({"a": 3.0, "b": 0.0}, 1)
    means = m.means()
    assert means["a"] == pytest.approx(1.5) and np.isnan(means["b"]) and m.n == 4


def test_best_epoch_keeps_the_best_state_and_stops_after_patience():
    best = BestEpoch(replace(QUICK, monitor="val_loss", patience=2))
    kept = [best.update(e, s, lambda e=e: {"epoch": e}) for e, s in enumerate([0.5, 0.4, 0.45, 0.41], 1)]
    assert kept == [True, True, False, False] and best.epoch == 2 and best.state == {"epoch": 2}
    assert best.should_stop(has_val=True) and best.stopped_early and best.best_score == 0.4
    assert not BestEpoch(QUICK).should_stop(has_val=False)
