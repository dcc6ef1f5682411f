"""Preprocessing: EOG band-pass, baseline correction, windows, labels, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from conftest import random_subject
from kdlib.data import deap
from kdlib.data.recording import Recording
from kdlib.data.windows import (ChannelScaler, PrepConfig, WindowSet, baseline_correct, binarize,
                                class_balance, concat_windows, filter_eog, majority_accuracy, make_windows)


def _recording(n_trials=4, seed=0, subject="s01") -> Recording:
    arrays = random_subject(seed, n_trials)
    data = arrays["data"]
    return Recording(subject=subject, eeg=data[:, :32].astype(np.float32), eog=data[:, 32:34].astype(np.float32),
                     ratings=arrays["labels"].astype(np.float32), eeg_channels=deap.EEG_CHANNELS,
                     eog_channels=deap.EOG_CHANNELS, fs=128.0, trial_ids=np.arange(1, n_trials + 1),
                     baseline_s=3.0)


def test_binarize_rule_at_threshold():
    r = np.array([1.0, 4.99, 5.0, 5.01, 9.0])
    assert binarize(r, 5.0, ">").tolist() == [0, 0, 0, 1, 1]
    assert binarize(r, 5.0, ">=").tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="rule"):
        binarize(r, 5.0, "=>")


@pytest.mark.parametrize("window_s,stride_s,n_win", [(4.0, 4.0, 15), (1.0, 1.0, 60), (4.0, 2.0, 29), (2.0, 4.0, 15)])
def test_window_counts_and_ids(window_s, stride_s, n_win):
    rec = _recording(n_trials=3)
    ws = make_windows(rec, PrepConfig(window_s=window_s, stride_s=stride_s, eog_band=None))
    win = int(window_s * 128)
    assert len(ws) == 3 * n_win
    assert ws.eeg.shape == (3 * n_win, 32, win) and ws.eog.shape == (3 * n_win, 2, win)
    assert ws.eeg.dtype == np.float32 and ws.eeg.flags.c_contiguous
    assert ws.trial.tolist() == np.repeat([1, 2, 3], n_win).tolist()
    assert set(ws.subject) == {"s01"}
    assert len(np.unique(ws.groups)) == 3


def test_windows_are_the_right_samples():
    rec = _recording(n_trials=2)
    cfg = PrepConfig(window_s=2.0, stride_s=1.0, eog_band=None, baseline="none")
    ws = make_windows(rec, cfg)
    # second trial, third window: starts 2 s after the 3 s baseline
    k = ws.subset(np.flatnonzero(ws.trial == 2)).start_s.tolist().index(2.0)
    i = np.flatnonzero(ws.trial == 2)[k]
    start = int((3.0 + 2.0) * 128)
    np.testing.assert_array_equal(ws.eeg[i], rec.eeg[1, :, start:start + 256])
    np.testing.assert_array_equal(ws.eog[i], rec.eog[1, :, start:start + 256])


def test_baseline_correction_removes_pre_trial_mean():
    x = np.random.default_rng(0).normal(size=(2, 3, 1000)) + np.array([5.0, -3.0, 100.0])[None, :, None]
    y = baseline_correct(x, 384)
    np.testing.assert_allclose(y[..., :384].mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y[..., 384:] - x[..., 384:],
                               np.broadcast_to(-x[..., :384].mean(-1, keepdims=True), (2, 3, 616)))


def test_eog_bandpass_removes_drift_and_keeps_blink_band():
    fs = 128.0
    t = np.arange(8064) / fs
    drift = 300.0 + 50.0 * t / t[-1]  # DC offset + slow drift, µV
    blink_band = 20.0 * np.sin(2 * np.pi * 2.0 * t)
    eog = np.stack([drift + blink_band, drift])[None].astype(np.float32)  # (1, 2, T)
    out = filter_eog(eog, fs, (0.1, 15.0))
    mid = slice(1000, 7000)
    assert abs(out[0, 1, mid]).max() < 2.0  # drift gone
    np.testing.assert_allclose(out[0, 0, mid].std(), blink_band[mid].std(), rtol=0.05)
    f, p = welch(out[0, 0], fs=fs)
    assert f[np.argmax(p)] == pytest.approx(2.0, abs=0.5)


def test_window_too_long_is_rejected():
    with pytest.raises(ValueError, match="longer than"):
        make_windows(_recording(2), PrepConfig(window_s=61.0, stride_s=1.0))


def test_prep_config_validation():
    with pytest.raises(ValueError, match="window_s"):
        PrepConfig(window_s=0)
    with pytest.raises(ValueError, match="eog_band"):
        PrepConfig(eog_band=(20.0, 1.0))
    with pytest.raises(ValueError, match="baseline"):
        PrepConfig(baseline="median")


def test_labels_follow_rule_and_tasks():
    ws = make_windows(_recording(4), PrepConfig(eog_band=None))
    np.testing.assert_array_equal(ws.labels("valence"), (ws.ratings[:, 0] > 5).astype(int))
    np.testing.assert_array_equal(ws.labels("arousal"), (ws.ratings[:, 1] > 5).astype(int))
    with pytest.raises(KeyError, match="unknown task"):
        ws.labels("happiness")


def test_majority_accuracy():
    assert majority_accuracy(np.array([1, 1, 0])) == pytest.approx(2 / 3)
    assert majority_accuracy(np.array([1, 1, 0]), np.array([0, 0, 0, 1])) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        majority_accuracy(np.array([]))


def test_class_balance_counts_trials_not_windows():
    ws = concat_windows([make_windows(_recording(5, seed=s, subject=f"s0{s}"), PrepConfig(eog_band=None))
                         for s in (1, 2)])
    table = class_balance(ws)
    assert set(table["subject"]) == {"s01", "s02", "all"}
    row = table[(table.subject == "all") & (table.task == "valence")].iloc[0]
    assert row.n_trials == 10 and row.n_high + row.n_low == 10
    assert row.majority_acc == max(row.n_high, row.n_low) / 10


def test_concat_rejects_mismatched_sets():
    a = make_windows(_recording(2), PrepConfig(eog_band=None))
    b = make_windows(_recording(2), PrepConfig(window_s=2.0, stride_s=2.0, eog_band=None))
    with pytest.raises(ValueError, match="differ"):
        concat_windows([a, b])


def test_scaler_fitted_on_training_windows_only():
    ws = make_windows(_recording(4), PrepConfig(eog_band=None))
    train = np.flatnonzero(ws.trial <= 2)
    test = np.flatnonzero(ws.trial > 2)
    ws.eeg[test] += 1000.0  # test windows far off: must not move the statistics
    scaler = ChannelScaler.fit(ws.subset(train))
    z = scaler.transform(ws)
    np.testing.assert_allclose(z.eeg[train].mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.eeg[train].std(axis=(0, 2)), 1.0, atol=1e-3)
    assert z.eeg[test].mean() > 50  # the shift is still visible: statistics came from train only
    assert z.eeg.dtype == np.float32 and ws.eeg[test].mean() > 900  # input untouched


def test_windowset_validates_lengths():
    ws = make_windows(_recording(2), PrepConfig(eog_band=None))
    with pytest.raises(ValueError, match="rows"):
        WindowSet(eeg=ws.eeg, eog=ws.eog[:-1], ratings=ws.ratings, subject=ws.subject, trial=ws.trial,
                  start_s=ws.start_s, fs=ws.fs, eeg_channels=ws.eeg_channels, eog_channels=ws.eog_channels)


def test_the_window_presets_are_one_configuration():
    """SMOKE, DEFAULT and PAPER are aliases (the paper gives one window length and step), not copies."""
    from kdlib.data import windows
    from kdlib.models import config

    assert windows.SMOKE is windows.DEFAULT is windows.PAPER
    assert (windows.PAPER.window_s, windows.PAPER.stride_s) == (4.0, 4.0)
    assert config.DEFAULT is config.PAPER and config.SMOKE != config.PAPER
