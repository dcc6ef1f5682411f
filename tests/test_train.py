"""kdlib.train: fit/predict/evaluate, seeding, checkpoints, early stopping on validation only."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from kdlib.data.splits import trial_kfold
from kdlib.data.windows import WindowSet
from kdlib.models import SMOKE as SMOKE_MODEL
from kdlib.models import EOGOnly, FusionTeacher
from kdlib.repro import seed_everything
from kdlib.train import (SMOKE, Batch, FitResult, TrainConfig, class_weights, evaluate, fit, load_checkpoint,
                         predict, progress_enabled, save_checkpoint)

FS, T = 128, 128  # 1 s windows keep every test fast


def planted(n_trials: int = 12, n_win: int = 4, seed: int = 0, amp: float = 1.5, flip: bool = False,
            high_share: float = 0.5) -> WindowSet:
    """Noise windows of one subject; high-valence trials carry a 6 Hz sine in EEG and EOG."""
    rng = np.random.default_rng(seed)
    n_high = int(round(high_share * n_trials))
    valence = rng.permutation(np.r_[np.full(n_high, 7.0), np.full(n_trials - n_high, 3.0)])
    ratings = np.c_[valence, rng.uniform(1, 9, (n_trials, 3))].astype(np.float32)
    y = np.repeat(valence > 5, n_win).astype(np.float32)
    sine = np.sin(2 * np.pi * 6 * np.arange(T) / FS).astype(np.float32)
    n = n_trials * n_win
    eeg = rng.normal(size=(n, 32, T)).astype(np.float32) + amp * y[:, None, None] * sine
    eog = rng.normal(size=(n, 2, T)).astype(np.float32) + amp * y[:, None, None] * sine
    if flip:  # same signals, opposite labels
        ratings[:, 0] = 10.0 - ratings[:, 0]
    return WindowSet(eeg=eeg, eog=eog, ratings=np.repeat(ratings, n_win, axis=0),
                     subject=np.full(n, "s01"), trial=np.repeat(np.arange(n_trials), n_win),
                     start_s=np.tile(np.arange(n_win, dtype=float), n_trials), fs=float(FS),
                     eeg_channels=tuple(f"E{i}" for i in range(32)), eog_channels=("hEOG", "vEOG"))


MODEL = replace(SMOKE_MODEL, n_samples=T)
QUICK = replace(SMOKE, epochs=3, batch_size=16, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def teacher(seed: int = 0) -> FusionTeacher:
    seed_everything(seed)
    return FusionTeacher(MODEL)


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def data():
    return planted(seed=0), planted(n_trials=6, seed=1)


# --- the API has no door to the test fold -------------------------------------------------------

def test_fit_takes_train_and_validation_only():
    params = inspect.signature(fit).parameters
    assert list(params)[:5] == ["model", "train", "val", "task", "config"]
    assert not [p for p in params if "test" in p.lower()]


def test_validation_drives_best_epoch(data):
    train, val = data
    cfg = replace(QUICK, epochs=6, patience=None, class_weight=None)
    res = fit(teacher(), train, val, "valence", cfg)
    h = res.history
    assert isinstance(res, FitResult) and isinstance(h, pd.DataFrame) and len(h) == 6
    assert res.best_epoch == int(h.loc[h["val_loss"].idxmin(), "epoch"])
    assert res.best_score == pytest.approx(h["val_loss"].min())
    # the restored weights are those of the best epoch: evaluating them reproduces its val loss
    assert evaluate(res.model, val, "valence")["loss"] == pytest.approx(res.best_score, rel=1e-5)

    # Same training data, validation labels flipped: now learning makes validation worse, so an
    # earlier epoch is chosen and early stopping ends the run. Only validation changed.
    flipped = planted(n_trials=6, seed=1, flip=True)
    res_flip = fit(teacher(), train, flipped, "valence", replace(cfg, patience=2))
    assert res_flip.best_epoch < res.best_epoch
    assert res_flip.stopped_early and len(res_flip.history) == res_flip.best_epoch + 2
    # two epochs were trained after the best one, yet the returned weights are the best epoch's
    assert evaluate(res_flip.model, flipped, "valence")["loss"] == pytest.approx(res_flip.best_score, rel=1e-5)
    assert res_flip.history["val_loss"].iloc[-1] > res_flip.best_score


def test_monitor_accuracy_picks_max(data):
    train, val = data
    res = fit(teacher(), train, val, "valence", replace(QUICK, epochs=4, monitor="val_f1"))
    h = res.history
    assert res.best_score == pytest.approx(h["val_f1"].max())
    assert res.best_epoch == int(h.loc[h["val_f1"].idxmax(), "epoch"])  # first epoch reaching the max


def test_test_fold_cannot_influence_training():
    """Training on a fold's train/val windows gives the same model whatever the test windows hold."""
    ws = planted(n_trials=10, n_win=3, seed=3)
    fold = trial_kfold(ws, "valence", n_splits=5, val_size=0.25, seed=0)[0]
    corrupted = replace(ws, eeg=ws.eeg.copy(), eog=ws.eog.copy(), ratings=ws.ratings.copy())
    corrupted.eeg[fold.test] = np.nan
    corrupted.eog[fold.test] = np.nan
    corrupted.ratings[fold.test] = 10 - corrupted.ratings[fold.test]
    cfg = replace(QUICK, epochs=2)
    a = fit(teacher(), ws.subset(fold.train), ws.subset(fold.val), "valence", cfg)
    b = fit(teacher(), corrupted.subset(fold.train), corrupted.subset(fold.val), "valence", cfg)
    assert states_equal(a.model, b.model)


def test_no_validation_keeps_last_epoch(data):
    res = fit(teacher(), data[0], None, "valence", QUICK)
    assert res.best_epoch == 3 and not res.stopped_early and res.history["val_loss"].isna().all()


# --- learning ------------------------------------------------------------------------------------

def test_overfits_a_tiny_batch():
    """16 windows of pure noise with arbitrary labels can be memorised: loss goes near zero."""
    ws = planted(n_trials=8, n_win=2, seed=5, amp=0.0)
    cfg = replace(SMOKE, epochs=60, batch_size=16, lr=3e-3, schedule="constant", class_weight=None,
                  weight_decay=0.0)
    res = fit(teacher(), ws, None, "valence", cfg)
    assert res.history["train_loss"].iloc[0] > 0.5
    assert res.history["train_loss"].iloc[-1] < 0.05
    assert evaluate(res.model, ws, "valence")["accuracy"] == 1.0


def test_learns_a_planted_signal_and_metrics(data):
    train, val = data
    res = fit(teacher(), train, val, "valence", replace(QUICK, epochs=5))
    test = planted(n_trials=6, seed=2)
    m = evaluate(res.model, test, "valence", train_labels=train.labels("valence"))
    assert set(m) == {"n", "accuracy", "f1", "majority_acc", "loss"}
    assert m["n"] == len(test) and m["majority_acc"] == 0.5
    assert m["accuracy"] > 0.9 and m["f1"] > 0.9
    p = predict(res.model, test)
    assert p.shape == (len(test), 2) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert m["accuracy"] == pytest.approx((p.argmax(1) == test.labels("valence")).mean())


def test_eog_only_model_never_receives_eeg(data):
    """fit routes inputs by ``model.modalities``; EOGOnly raises if EEG is ever passed."""
    train, val = data
    seed_everything(0)
    res = fit(EOGOnly(MODEL), train, val, "valence", QUICK)
    assert len(res.history) == 3
    assert predict(res.model, val).shape == (len(val), 2)


def test_custom_loss_receives_batches_with_indices(data):
    train, _ = data
    seen = []

    def loss_fn(model, batch: Batch):
        assert batch.eeg.shape[1:] == (32, T) and batch.eog.shape[1:] == (2, T)
        seen.append(batch.index.clone())
        logits = model(batch.eeg, batch.eog).logits
        return F.cross_entropy(logits, batch.y), logits

    fit(teacher(), train, None, "valence", replace(QUICK, epochs=1), loss_fn=loss_fn)
    assert torch.equal(torch.sort(torch.cat(seen)).values, torch.arange(len(train)))  # every window once


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_same_weights_and_metrics(data):
    train, val = data
    cfg = replace(QUICK, seed=7)
    a = fit(teacher(1), train, val, "valence", cfg)
    b = fit(teacher(1), train, val, "valence", cfg)
    assert states_equal(a.model, b.model)
    cols = ["train_loss", "train_acc", "val_loss", "val_acc", "val_f1"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])
    assert evaluate(a.model, val, "valence") == evaluate(b.model, val, "valence")
    c = fit(teacher(1), train, val, "valence", replace(cfg, seed=8))  # another batch order
    assert not states_equal(a.model, c.model)


# --- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path, data):
    train, val = data
    path = tmp_path / "ckpt" / "best.pt"
    res = fit(teacher(), train, val, "valence", QUICK, checkpoint=path)
    assert res.checkpoint == path and path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind
    fresh = teacher(seed=99)
    assert not states_equal(fresh, res.model)
    meta = load_checkpoint(fresh, path)
    assert states_equal(fresh, res.model)
    assert meta["epoch"] == res.best_epoch and meta["task"] == "valence"
    assert meta["model_config"]["d_model"] == MODEL.d_model and meta["train_config"]["lr"] == QUICK.lr
    np.testing.assert_array_equal(predict(fresh, val), predict(res.model, val))
    # plain state dicts only: loadable with weights_only=True, no pickled classes
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"state_dict", "meta"}


def test_save_checkpoint_replaces_atomically(tmp_path):
    m = teacher()
    path = save_checkpoint(m, tmp_path / "m.pt", note="first")
    save_checkpoint(teacher(seed=3), path, note="second")
    assert load_checkpoint(m, path) == {"note": "second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


# --- class weights -------------------------------------------------------------------------------

def test_class_weights_balanced():
    np.testing.assert_allclose(class_weights(np.array([0, 0, 0, 1])), [4 / 6, 2.0])
    np.testing.assert_allclose(class_weights(np.array([1, 1])), [1.0, 0.5])  # absent class: as if seen once
    w = class_weights(np.r_[np.zeros(30, int), np.ones(10, int)])
    assert w[1] == pytest.approx(3 * w[0])


def test_fit_uses_class_weights():
    """With lr 0 and one full batch, the logged loss is the initial model's weighted CE."""
    ws = planted(n_trials=8, n_win=3, seed=4, high_share=0.25)
    y = torch.from_numpy(ws.labels("valence"))
    cfg = replace(SMOKE, epochs=1, batch_size=len(ws), lr=0.0)
    w = class_weights(y.numpy())
    assert w[1] == pytest.approx(3 * w[0])

    def initial_loss(weight):
        m = teacher()
        m.train()
        with torch.no_grad():
            logits = m(torch.from_numpy(ws.eeg), torch.from_numpy(ws.eog)).logits
        return F.cross_entropy(logits, y, weight=weight).item()

    res = fit(teacher(), ws, None, "valence", cfg)
    np.testing.assert_allclose(res.class_weights, w)
    assert res.history["train_loss"].iloc[0] == pytest.approx(initial_loss(torch.from_numpy(w)), rel=1e-5)
    res_none = fit(teacher(), ws, None, "valence", replace(cfg, class_weight=None))
    assert res_none.class_weights is None
    assert res_none.history["train_loss"].iloc[0] == pytest.approx(initial_loss(None), rel=1e-5)
    assert initial_loss(None) != pytest.approx(initial_loss(torch.from_numpy(w)), rel=1e-3)


# --- schedule and output -------------------------------------------------------------------------

def test_cosine_schedule_and_history_columns(data):
    train, _ = data
    res = fit(teacher(), train, None, "valence", replace(QUICK, epochs=4, warmup_epochs=1.0))
    h = res.history
    assert list(h.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds"]
    assert h["lr"].iloc[0] == pytest.approx(QUICK.lr)  # end of warm-up
    assert list(h["lr"]) == sorted(h["lr"], reverse=True) and h["lr"].iloc[-1] < 1e-8
    flat = fit(teacher(), train, None, "valence", replace(QUICK, epochs=2, schedule="constant", warmup_epochs=0))
    assert (flat.history["lr"] == QUICK.lr).all()


def test_quiet_when_asked(capfd, monkeypatch, data):
    train, val = data
    fit(teacher(), train, val, "valence", replace(QUICK, epochs=1, progress=False))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True and progress_enabled(False) is False


def test_progress_bar_when_asked(capfd, data):
    fit(teacher(), data[0], None, "valence", replace(QUICK, epochs=1, progress=True))
    assert "fit valence" in capfd.readouterr().err


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(monitor="test_acc")
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="class_weight"):
        fit(teacher(), planted(n_trials=4, n_win=1), None, "valence", replace(QUICK, class_weight=(1.0,)))
