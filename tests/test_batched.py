"""kdlib.batched: the fold-batched trainer agrees with fit, keeps members apart, stops each on its own."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import MODEL, QUICK, planted

from kdlib.batched import fit_batched, group_by_size
from kdlib.data.splits import fold_windows, trial_kfold
from kdlib.distill.distill import PRESETS, distill, distill_batched
from kdlib.models import EOGOnly, FusionTeacher
from kdlib.repro import seed_everything
from kdlib.train import fit, predict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = replace(QUICK, epochs=4, patience=2)
#: Stated tolerance of batched vs sequential training without dropout (float rounding only):
VAL_LOSS_ATOL, PROB_ATOL = 1e-3, 1e-2


@pytest.fixture(scope="module")
def folds():
    """Three folds of one planted subject: (train, val, test) per fold, equal training sizes."""
    ws = planted(n_trials=15, n_win=4)
    sides = [fold_windows(ws, f) for f in trial_kfold(ws, "valence", 3, val_size=0.2, quiz_size=0.0, seed=0)]
    return [(s["train"], s["val"], s["test"]) for s in sides]


def build(cls=FusionTeacher, seed=0, config=MODEL):
    seed_everything(seed)
    return cls(config)


def state_diff(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)


def test_batched_agrees_with_sequential(folds):
    assert MODEL.dropout == 0.0  # deterministic settings: the paths differ by float rounding only
    seq = [fit(build(), tr, va, "valence", CFG) for tr, va, _ in folds]
    bat = fit_batched([build() for _ in folds], [f[0] for f in folds], [f[1] for f in folds], "valence", CFG)
    for s, b, (_, _, test) in zip(seq, bat, folds):
        assert list(b.history.columns) == list(s.history.columns)
        assert b.best_epoch == s.best_epoch and b.stopped_early == s.stopped_early
        np.testing.assert_allclose(b.history["val_loss"], s.history["val_loss"], atol=VAL_LOSS_ATOL)
        np.testing.assert_allclose(b.history["lr"], s.history["lr"], rtol=1e-6)
        np.testing.assert_array_equal(b.class_weights, s.class_weights)
        np.testing.assert_allclose(predict(b.model, test), predict(s.model, test), atol=PROB_ATOL)


def test_batched_students_agree_with_distill(folds):
    trains, vals = [f[0] for f in folds], [f[1] for f in folds]
    teachers = [r.model for r in fit_batched([build() for _ in folds], trains, vals, "valence", CFG)]
    for name in ("scratch", "v2"):
        seq = [distill(t, tr, va, "valence", PRESETS[name], CFG, model_config=MODEL)
               for t, tr, va in zip(teachers, trains, vals)]
        bat = distill_batched(teachers, trains, vals, "valence", PRESETS[name], CFG, model_config=MODEL)
        for s, b, (_, _, test) in zip(seq, bat, folds):
            assert list(b.history.columns) == list(s.history.columns) and b.best_epoch == s.best_epoch
            cols = ["val_loss", "ce", "kd", "feat", "share_feat", "cka"]
            np.testing.assert_allclose(b.history[cols], s.history[cols], atol=VAL_LOSS_ATOL)
            assert b.cka_init == pytest.approx(s.cka_init, abs=1e-4)
            np.testing.assert_allclose(predict(b.student, test), predict(s.student, test), atol=PROB_ATOL)
    with pytest.raises(ValueError, match="not batched"):
        distill_batched(teachers, trains, vals, "valence", PRESETS["v3"], CFG)


def same_member(a, b, test) -> None:
    """Two trainings of one member agree to the stated tolerance (history and test probabilities)."""
    assert a.best_epoch == b.best_epoch and len(a.history) == len(b.history)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], atol=VAL_LOSS_ATOL)
    np.testing.assert_allclose(predict(a.model, test), predict(b.model, test), atol=PROB_ATOL)


def test_each_member_stops_on_its_own_best_epoch(folds):
    """Member 0 validates on flipped labels (its validation loss rises as it learns): it stops early
    on its own best epoch and leaves the stack; member 1 goes on, exactly as if trained alone."""
    (tr0, va0, _), (tr1, va1, _) = folds[0], folds[1]
    flipped = replace(va0, ratings=np.c_[10.0 - va0.ratings[:, 0], va0.ratings[:, 1:]])
    cfg = replace(CFG, epochs=6, patience=1)
    both = fit_batched([build(), build()], [tr0, tr1], [flipped, va1], "valence", cfg)
    alone = fit_batched([build()], [tr1], [va1], "valence", cfg)[0]
    for r in both:
        losses = r.history["val_loss"].to_numpy()
        assert r.best_epoch == 1 + int(np.argmin(losses))  # its own best, on its own validation
        assert len(losses) == cfg.epochs or (r.stopped_early and len(losses) == r.best_epoch + cfg.patience)
    assert len(both[0].history) < len(both[1].history)
    same_member(both[1], alone, folds[1][2])  # its stack mate's stop changed nothing (beyond rounding)


def test_a_members_data_never_reach_another(folds):
    """Shuffling the labels of member 1's own fold changes member 1 only (bitwise)."""
    trains, vals = [f[0] for f in folds], [f[1] for f in folds]
    rng = np.random.default_rng(1)
    shuffled = replace(trains[1], ratings=trains[1].ratings[rng.permutation(len(trains[1]))])
    a = fit_batched([build() for _ in folds], trains, vals, "valence", CFG)
    b = fit_batched([build() for _ in folds], [trains[0], shuffled, trains[2]], vals, "valence", CFG)
    assert state_diff(a[0].model, b[0].model) == 0.0 and state_diff(a[2].model, b[2].model) == 0.0
    assert state_diff(a[1].model, b[1].model) > 1e-3


def test_dropout_is_deterministic_and_independent_of_the_stack(folds):
    cfg_model = replace(MODEL, dropout=0.2)
    trains, vals = [f[0] for f in folds], [f[1] for f in folds]

    def run(idx):
        return fit_batched([build(EOGOnly, config=cfg_model) for _ in idx], [trains[i] for i in idx],
                           [vals[i] for i in idx], "valence", CFG)
    first, again, alone = run([0, 1, 2]), run([0, 1, 2]), run([2])
    assert all(state_diff(x.model, y.model) == 0.0 for x, y in zip(first, again))  # same seed, same numbers
    same_member(first[2], alone[0], folds[2][2])  # its masks do not depend on its stack mates


def test_members_need_equal_training_sizes(folds):
    (tr0, va0, _), (tr1, va1, _) = folds[0], folds[1]
    short = tr1.subset(np.arange(len(tr1) - 4))
    assert group_by_size([tr0, short, tr1]) == [[0, 2], [1]]
    with pytest.raises(ValueError, match="equally many"):
        fit_batched([build(), build()], [tr0, short], [va0, va1], "valence", CFG)
    torch.manual_seed(0)  # leave the global stream as other tests expect nothing of it


# --- the device path (benchmarks/gpu_check.sh runs these with -m gpu on a GPU) ----------------------

DEVICE = os.environ.get("KDLIB_TEST_DEVICE", "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device here")
def test_batched_on_the_device_agrees_with_the_cpu(folds):
    trains, vals = [f[0] for f in folds], [f[1] for f in folds]
    cpu = fit_batched([build() for _ in folds], trains, vals, "valence", replace(CFG, device="cpu"))
    dev = fit_batched([build() for _ in folds], trains, vals, "valence", replace(CFG, device=DEVICE))
    amp = fit_batched([build() for _ in folds], trains, vals, "valence", replace(CFG, device=DEVICE, amp=True))
    for c, d, a, (_, _, test) in zip(cpu, dev, amp, folds):
        assert next(d.model.parameters()).device.type == torch.device(DEVICE).type
        np.testing.assert_allclose(d.history["val_loss"], c.history["val_loss"], atol=1e-2)  # other kernels
        np.testing.assert_allclose(predict(d.model, test), predict(c.model.to("cpu"), test), atol=5e-2)
        assert np.isfinite(a.history["val_loss"]).all()
        if DEVICE == "cpu":  # mixed precision is CUDA-only: on the CPU, amp=True changes nothing
            assert state_diff(a.model, d.model) == 0.0


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.sh --cpu: the device tests and the timed steps, end to end, on the CPU
    with smoke sizes (what the script does on a GPU, with nothing installed: all is here)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable, "OUT_DIR": str(tmp_path), "WHEELS": str(tmp_path / "none")}
    proc = subprocess.run(["bash", str(script), "--cpu"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in (tmp_path / "gpu_check_tests.txt").read_text()
    table = pd.read_csv(tmp_path / "gpu_check.csv")
    assert len(table) == 4 and table["what"].str.startswith("paper").any()
    assert (table.loc[table["what"].str.startswith("unit"), "rows"] == 9 * 2).all()  # methods x folds
    assert "paper_hours_extrapolated" in (tmp_path / "gpu_check.md").read_text()
