"""The real EEG + EOG recording (EEGLAB tutorial data) through MNE into kdlib's windows.

Skipped where ``../shared`` is absent (a user's clone); CI has it.
"""

from __future__ import annotations

import mne
import numpy as np
import pytest

from kdlib import paths
from kdlib.data.mne_io import find_blinks, read_eeglab_tutorial, recording_from_raw
from kdlib.data.windows import PrepConfig, make_windows

pytestmark = pytest.mark.skipif(not (paths.eeglab_tutorial_dir() / "test_raw.set").is_file(),
                                reason="../shared/data/eeglab_tutorial not present")


@pytest.fixture(scope="module")
def raw():
    return read_eeglab_tutorial()


def test_channels_and_eog_types(raw):
    assert raw.info["sfreq"] == 128.0 and len(raw.ch_names) == 32
    eog = [ch for ch, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eog"]
    assert eog == ["EOG1", "EOG2"]
    from kdlib.data.deap import EEG_CHANNELS
    shared = set(EEG_CHANNELS) & set(raw.ch_names)
    assert len(shared) == 26 and not {"Fp1", "Fp2", "AF3", "AF4", "F7", "F8"} & shared


def test_blinks_found_by_mne(raw):
    events = mne.preprocessing.find_eog_events(raw, ch_name="EOG1", verbose="error")
    assert len(events) == 16


def test_recording_windows_and_blinks(raw):
    rec = recording_from_raw(raw, "eeglab", onsets_s=[2.0, 60.0, 120.0, 180.0], duration_s=56.0,
                             ratings=np.full((4, 4), 5.0), baseline_s=2.0)
    assert rec.eog_channels == ("EOG1", "EOG2") and len(rec.eeg_channels) == 30
    ws = make_windows(rec, PrepConfig())
    assert ws.eeg.shape == (4 * 14, 30, 512) and ws.eog.shape == (4 * 14, 2, 512)
    assert np.isfinite(ws.eog).all()
    # µV scale: real EEG has tens of µV, not volts
    assert 1.0 < np.median(np.abs(ws.eeg)) < 200.0
    whole = recording_from_raw(raw, "eeglab", onsets_s=[0.0], duration_s=raw.n_times / 128.0 - 0.01,
                               ratings=np.full((1, 4), 5.0))
    assert len(find_blinks(whole, 0, "EOG1")) == 16


def test_occipital_alpha_peak_near_10_hz(raw):
    psd = raw.compute_psd(picks=["O1", "Oz", "O2"], fmin=5, fmax=20, verbose="error")
    freqs = psd.freqs[np.argmax(psd.get_data().mean(axis=0))]
    assert 8.0 <= freqs <= 12.0


def test_unknown_channels_and_out_of_range_trials(raw):
    with pytest.raises(ValueError, match=r"unknown channel.*\['vEOG'\]"):
        recording_from_raw(raw, "x", [10.0], 5.0, np.full((1, 4), 5.0), eog_picks=["vEOG"])
    with pytest.raises(ValueError, match="beyond the recording"):
        recording_from_raw(raw, "x", [236.0], 5.0, np.full((1, 4), 5.0))


def test_blink_detection_refuses_short_trials(raw):
    rec = recording_from_raw(raw, "eeglab", onsets_s=[10.0, 20.0], duration_s=2.5, ratings=np.full((2, 4), 5.0))
    with pytest.raises(ValueError, match="too short for blink detection"):
        find_blinks(rec, 0, "EOG1")
