"""The fast data path (issue #8): memory-mapped DEAP files and cache entries, fused windowing.

Each fast path must give exactly what the plain one gives, and refuse what it refuses.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from _py2pickle import py2_pickle
from conftest import random_subject
from kdlib.data import cache, deap
from kdlib.data.deap import DeapFormatError
from kdlib.data.windows import PrepConfig, baseline_correct, concat_windows, make_windows


def _same(a: dict, b: dict) -> None:
    for key in ("data", "labels"):
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_map_dat_equals_load_dat(tmp_path, protocol):
    arrays = random_subject(0, n_trials=3)
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    mapped = deap.map_dat(path)
    _same(mapped, deap.load_dat(path))
    assert not mapped["data"].flags.writeable  # a view of the file, not a copy


def test_map_dat_reads_genuine_python2_and_fortran_files(tmp_path):
    arrays = random_subject(1, n_trials=2)
    (tmp_path / "s01.dat").write_bytes(py2_pickle(arrays))
    _same(deap.map_dat(tmp_path / "s01.dat"), arrays)
    fortran = {"data": np.asfortranarray(arrays["data"]), "labels": arrays["labels"]}
    (tmp_path / "s02.dat").write_bytes(pickle.dumps(fortran, protocol=4))
    _same(deap.map_dat(tmp_path / "s02.dat"), arrays)


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_map_dat_refuses_what_load_dat_refuses(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": _Exploit(marker), "labels": np.ones((2, 4))}))
    with pytest.raises(DeapFormatError, match=r"s01\.dat.*refused.*system"):
        deap.map_dat(path)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.99])
def test_map_dat_truncated_file(tmp_path, keep):
    arrays = random_subject(4, n_trials=2)
    good = deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"])
    bad = tmp_path / "s02.dat"
    bad.write_bytes(good.read_bytes()[: int(good.stat().st_size * keep)])
    with pytest.raises(DeapFormatError, match=r"s02\.dat.*truncated"):
        deap.map_dat(bad)


@pytest.mark.parametrize("channel", [3, 33, 36])  # EEG F7, vEOG, GSR
def test_load_subject_names_a_non_finite_sample(tmp_path, channel):
    arrays = random_subject(5, n_trials=3)
    arrays["data"][2, channel, 100] = np.nan
    path = tmp_path / "s03.dat"
    path.write_bytes(pickle.dumps(arrays, protocol=4))  # save_dat would refuse it
    with pytest.raises(DeapFormatError, match=rf"s03\.dat.*trial 2, channel {deap.ALL_CHANNELS[channel]}"):
        deap.load_subject(path)


def test_load_subject_matches_the_plain_conversion(tmp_path):
    arrays = random_subject(6, n_trials=3)
    rec = deap.load_subject(deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"]))
    np.testing.assert_array_equal(rec.eeg, arrays["data"][:, deap.EEG_IDX].astype(np.float32))
    np.testing.assert_array_equal(rec.eog, arrays["data"][:, deap.EOG_IDX].astype(np.float32))
    assert rec.eeg.flags.writeable and rec.eeg.flags.c_contiguous


@pytest.mark.parametrize("config", [PrepConfig(), PrepConfig(eog_band=None, window_s=1.0, stride_s=1.0),
                                    PrepConfig(baseline="none", window_s=2.0, stride_s=0.5)])
def test_fused_windows_equal_baseline_then_cut(tmp_path, config):
    arrays = random_subject(7, n_trials=2)
    rec = deap.load_subject(deap.save_dat(tmp_path / "s01.dat", arrays["data"], arrays["labels"]))
    ws = make_windows(rec, config)
    n_base, win, stride = 384, int(config.window_s * 128), int(config.stride_s * 128)
    eeg = baseline_correct(rec.eeg, n_base) if config.baseline == "mean" else rec.eeg
    ref = np.lib.stride_tricks.sliding_window_view(eeg[..., n_base:], win, axis=-1)[..., ::stride, :]
    ref = ref.transpose(0, 2, 1, 3).reshape(-1, 32, win)  # (N, 32, win)
    np.testing.assert_array_equal(ws.eeg, ref)
    assert ws.eeg.dtype == np.float32


def test_cache_entry_round_trip_is_writable_and_leaves_the_entry_unchanged(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    (entry,) = cdir.glob("s01-*")
    with np.load(entry / "meta.npz") as z:
        plain = {k: z[k] for k in z.files}
    plain.update(eeg=np.load(entry / "eeg.npy"), eog=np.load(entry / "eog.npy"))
    ws = cache.load_entry(entry)
    for name in ("eeg", "eog", "ratings", "subject", "trial", "start_s"):
        assert getattr(ws, name).dtype == plain[name].dtype
        np.testing.assert_array_equal(getattr(ws, name), plain[name])
    ws.eeg[0, 0, 0] += 1.0  # writable, private to this process
    np.testing.assert_array_equal(np.load(entry / "eeg.npy"), plain["eeg"])


def test_prepare_dataset_concatenation_matches_concat_windows(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    ws = cache.prepare_dataset(deap_dir, cache_dir=cdir, progress=False)
    parts = [cache.prepare_subject(deap_dir / f"s0{i}.dat", cache_dir=cdir) for i in (1, 2, 3)]
    ref = concat_windows(parts)
    for name in ("eeg", "eog", "ratings", "subject", "trial", "start_s"):
        assert getattr(ws, name).dtype == getattr(ref, name).dtype
        np.testing.assert_array_equal(getattr(ws, name), getattr(ref, name))
