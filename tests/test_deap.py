"""DEAP file loading: genuine Python-2 pickles, Python-3 files, .mat, and every kind of bad file."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from scipy.io import savemat

from _py2pickle import py2_pickle
from conftest import random_subject
from kdlib.data import deap
from kdlib.data.deap import DeapFormatError


def test_channel_constants_follow_deap_layout():
    assert len(deap.EEG_CHANNELS) == 32 and len(set(deap.EEG_CHANNELS)) == 32
    assert deap.EEG_CHANNELS[:4] == ("Fp1", "AF3", "F3", "F7")
    assert deap.EEG_CHANNELS[16] == "Fp2" and deap.EEG_CHANNELS[-1] == "O2"
    assert len(deap.ALL_CHANNELS) == deap.N_CHANNELS == 40
    assert [deap.ALL_CHANNELS[i] for i in deap.EOG_IDX] == ["hEOG", "vEOG"]
    assert deap.N_SAMPLES == int((60 + deap.BASELINE_S) * deap.FS)


def test_genuine_python2_pickle_loads(tmp_path):
    arrays = random_subject(0, n_trials=3)
    path = tmp_path / "s07.dat"
    path.write_bytes(py2_pickle({"labels": arrays["labels"], "data": arrays["data"]}))
    assert b"numpy.core.multiarray" in path.read_bytes()[:200]  # really the Python-2 layout
    loaded = deap.load_dat(path)
    np.testing.assert_array_equal(loaded["data"], arrays["data"])
    np.testing.assert_array_equal(loaded["labels"], arrays["labels"])


def test_python3_round_trip_and_recording(tmp_path):
    arrays = random_subject(1, n_trials=4)
    path = deap.save_dat(tmp_path / "s12.dat", arrays["data"], arrays["labels"])
    rec = deap.load_subject(path)
    assert rec.subject == "s12" and rec.n_trials == 4 and rec.fs == 128.0
    assert rec.eeg.shape == (4, 32, 8064) and rec.eog.shape == (4, 2, 8064)
    assert rec.eeg.dtype == np.float32
    np.testing.assert_allclose(rec.eog[:, 1], arrays["data"][:, 33], rtol=1e-6)
    np.testing.assert_allclose(rec.rating("arousal"), arrays["labels"][:, 1], rtol=1e-6)
    assert rec.trial_ids.tolist() == [1, 2, 3, 4] and rec.baseline_s == 3.0


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    arrays = random_subject(2, n_trials=2)
    path = deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"])
    before = path.read_bytes()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(deap.pickle, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        deap.save_dat(path, arrays["data"] * 2, arrays["labels"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s01.dat"]  # no temporary left behind


def test_mat_round_trip(tmp_path):
    arrays = random_subject(3, n_trials=3)
    savemat(tmp_path / "s02.mat", arrays)
    rec = deap.load_subject(tmp_path / "s02.mat")
    assert rec.subject == "s02"
    np.testing.assert_allclose(rec.eeg, arrays["data"][:, :32].astype(np.float32))


class _Exploit:
    """A pickle payload that would create a file if it were executed."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": _Exploit(marker), "labels": np.ones((2, 4))}))
    with pytest.raises(DeapFormatError, match=r"s01\.dat.*refused.*system"):
        deap.load_dat(path)
    assert not marker.exists()


def test_pickle_of_other_python_objects_is_refused(tmp_path):
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": [1, 2], "labels": {1, 2}, "x": __import__("collections").OrderedDict()}))
    with pytest.raises(DeapFormatError, match="refused.*collections.OrderedDict"):
        deap.load_dat(path)


def test_truncated_file(tmp_path):
    arrays = random_subject(4, n_trials=2)
    good = deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"])
    bad = tmp_path / "s02.dat"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DeapFormatError, match=r"s02\.dat.*truncated"):
        deap.load_dat(bad)


@pytest.mark.parametrize("name", ["missing.dat", "empty.dat"])
def test_missing_or_empty_file(tmp_path, name):
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(DeapFormatError, match=name.replace(".", r"\.") + ".*(not found|empty)"):
        deap.load_dat(tmp_path / name)


def _write_raw(path, data, labels):
    """Bypass save_dat's validation to produce a bad file."""
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}))
    return path


def test_wrong_shape(tmp_path):
    arrays = random_subject(5, n_trials=2)
    path = _write_raw(tmp_path / "s03.dat", arrays["data"][:, :, :8000], arrays["labels"])
    with pytest.raises(DeapFormatError, match=r"s03\.dat.*shape \(2, 40, 8000\)"):
        deap.load_dat(path)
    path = _write_raw(tmp_path / "s04.dat", arrays["data"], arrays["labels"][:, :3])
    with pytest.raises(DeapFormatError, match=r"s04\.dat.*'labels' has shape"):
        deap.load_dat(path)


def test_nan_in_data_names_trial_and_channel(tmp_path):
    arrays = random_subject(6, n_trials=3)
    arrays["data"][1, 33, 100] = np.nan
    path = _write_raw(tmp_path / "s05.dat", arrays["data"], arrays["labels"])
    with pytest.raises(DeapFormatError, match=r"s05\.dat.*NaN.*trial 1, channel vEOG"):
        deap.load_dat(path)


@pytest.mark.parametrize("value", [0.5, 9.5, np.nan])
def test_ratings_out_of_range(tmp_path, value):
    arrays = random_subject(7, n_trials=3)
    arrays["labels"][2, 1] = value
    path = _write_raw(tmp_path / "s06.dat", arrays["data"], arrays["labels"])
    with pytest.raises(DeapFormatError, match=r"s06\.dat.*(out of range.*arousal|non-finite.*arousal)"):
        deap.load_dat(path)


def test_missing_key(tmp_path):
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 40, 8064))}))
    with pytest.raises(DeapFormatError, match="missing key.*labels"):
        deap.load_dat(path)


def test_subject_files_and_errors(deap_dir, tmp_path):
    assert [p.name for p in deap.subject_files(deap_dir)] == ["s01.dat", "s02.dat", "s03.dat"]
    assert [p.name for p in deap.subject_files(deap_dir, [3, "s01"])] == ["s03.dat", "s01.dat"]
    with pytest.raises(DeapFormatError, match=r"s09.*not found"):
        deap.subject_files(deap_dir, [9])
    with pytest.raises(DeapFormatError, match="empty"):
        deap.subject_files(deap_dir, [])
    with pytest.raises(DeapFormatError, match="no DEAP subject files"):
        deap.subject_files(tmp_path / "deap" / "..")  # a folder without sNN files at its top
    with pytest.raises(DeapFormatError, match="not found"):
        deap.subject_files(tmp_path / "nowhere")


def test_deap_root_layout_is_recognised(tmp_path):
    arrays = random_subject(8, n_trials=2)
    deap.save_dat(tmp_path / "data_preprocessed_python" / "s01.dat", arrays["data"], arrays["labels"])
    assert deap.subject_files(tmp_path)[0].parent.name == "data_preprocessed_python"


def test_recording_mne_views(tmp_path):
    arrays = random_subject(9, n_trials=2)
    rec = deap.load_subject(deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"]))
    raw = rec.to_raw(1)
    assert raw.ch_names[:2] == ["Fp1", "AF3"] and raw.ch_names[-2:] == ["hEOG", "vEOG"]
    assert raw.get_channel_types().count("eog") == 2
    assert raw.get_montage() is not None
    np.testing.assert_allclose(raw.get_data(picks="vEOG")[0] * 1e6, arrays["data"][1, 33], rtol=1e-5)
    epochs = rec.to_epochs()
    assert len(epochs) == 2 and epochs.tmin == -3.0
    assert list(epochs.metadata.columns) == ["trial_id", "valence", "arousal", "dominance", "liking"]
