"""The prepared-window cache: keyed by config and file, atomic, read on the second run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import random_subject
from kdlib.data import cache, deap, load_windows, dataset_dir
from kdlib.data.windows import PrepConfig


def test_second_run_reads_the_cache(deap_dir, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"
    first = cache.prepare_dataset(deap_dir, cache_dir=cdir, progress=False)
    assert len(list(cdir.glob("s0?-*"))) == 3

    def must_not_load(path):
        raise AssertionError("source file read although a cache entry exists")

    monkeypatch.setattr(deap, "load_subject", must_not_load)
    second = cache.prepare_dataset(deap_dir, cache_dir=cdir, progress=False)
    for name in ("eeg", "eog", "ratings", "subject", "trial", "start_s"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert (second.fs, second.eeg_channels, second.rule) == (first.fs, first.eeg_channels, first.rule)
    assert second.subjects() == ["s01", "s02", "s03"]


def test_key_changes_with_config_and_file(deap_dir):
    f = deap_dir / "s01.dat"
    k = cache.cache_key(f, PrepConfig())
    assert cache.cache_key(f, PrepConfig()) == k
    assert cache.cache_key(f, PrepConfig(window_s=2.0, stride_s=2.0)) != k
    assert cache.cache_key(f, PrepConfig(rule=">=")) != k
    arrays = random_subject(42)
    deap.save_dat(f, arrays["data"], arrays["labels"])  # same name, new content
    assert cache.cache_key(f, PrepConfig()) != k


def test_stale_entry_is_not_used_after_the_file_changes(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    before = cache.prepare_subject(deap_dir / "s02.dat", cache_dir=cdir)
    arrays = random_subject(99)
    deap.save_dat(deap_dir / "s02.dat", arrays["data"], arrays["labels"])
    after = cache.prepare_subject(deap_dir / "s02.dat", cache_dir=cdir)
    assert not np.array_equal(before.eeg, after.eeg)
    np.testing.assert_allclose(after.ratings[0], arrays["labels"][0], rtol=1e-6)


def test_corrupt_entry_is_rebuilt(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    good = cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    (entry,) = cdir.glob("s01-*")
    windows = entry / "eeg.npy"
    windows.write_bytes(windows.read_bytes()[:1000])
    with pytest.raises(ValueError, match=entry.name):
        cache.load_entry(entry)
    again = cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    np.testing.assert_array_equal(again.eeg, good.eeg)
    cache.load_entry(entry)  # rewritten whole


def test_interrupted_write_leaves_no_entry(deap_dir, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    assert list(cdir.iterdir()) == []


def test_bad_source_file_fails_with_its_name_and_keeps_other_entries(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    bad = deap_dir / "s02.dat"
    bad.write_bytes(bad.read_bytes()[:5000])
    with pytest.raises(deap.DeapFormatError, match=r"s02\.dat.*truncated"):
        cache.prepare_dataset(deap_dir, cache_dir=cdir, progress=False)
    assert len(list(cdir.glob("s01-*"))) == 1


def test_no_cache_mode_writes_nothing(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    ws = cache.prepare_dataset(deap_dir, cache_dir=cdir, use_cache=False, progress=False, subjects=[2])
    assert ws.subjects() == ["s02"] and not cdir.exists()


def test_dataset_dir_messages(tmp_path, monkeypatch):
    monkeypatch.delenv("KDLIB_DEAP_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="KDLIB_DEAP_DIR"):
        dataset_dir("deap")
    with pytest.raises(FileNotFoundError, match="nowhere.*not found"):
        dataset_dir("deap", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="kdlib.data.synthetic"):
        dataset_dir("synthetic", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_dir("seed")


def test_load_windows_reads_a_deap_folder_from_the_environment(deap_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DEAP_DIR", str(deap_dir))
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path / "kdlib-data"))
    ws = load_windows("deap", subjects=["s03"], progress=False)
    assert ws.subjects() == ["s03"] and len(ws) == 6 * 15
    assert list((tmp_path / "kdlib-data" / "cache").glob("s03-*"))


def test_threads_give_the_same_windows_in_subject_order(deap_dir, tmp_path):
    one = cache.prepare_dataset(deap_dir, cache_dir=tmp_path / "one", progress=False)
    two = cache.prepare_dataset(deap_dir, cache_dir=tmp_path / "two", progress=False, jobs=2)
    for name in ("eeg", "eog", "ratings", "subject", "trial", "start_s"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert [p.name for p in cache.list_entries(tmp_path / "one")] == [p.name for p in cache.list_entries(tmp_path / "two")]


def test_cached_windows_are_memory_mapped_views_of_the_entry(deap_dir, tmp_path):
    cdir = tmp_path / "cache"
    cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    ws = cache.prepare_subject(deap_dir / "s01.dat", cache_dir=cdir)
    (entry,) = cache.list_entries(cdir, "s01")
    assert isinstance(ws.eeg.base, np.memmap) and Path(ws.eeg.base.filename) == (entry / "eeg.npy").resolve()
    assert sorted(p.name for p in entry.iterdir()) == ["eeg.npy", "eog.npy", "meta.npz"]


def test_build_cache_writes_every_entry_then_reads_nothing_new(deap_dir, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"
    assert cache.build_cache(deap_dir, cache_dir=cdir, progress=False, jobs=2) == 3 * 6 * 15
    assert [p.name[:3] for p in cache.list_entries(cdir)] == ["s01", "s02", "s03"]
    monkeypatch.setattr(deap, "load_subject", lambda path: pytest.fail(f"{path} read again"))
    assert cache.build_cache(deap_dir, cache_dir=cdir, progress=False, subjects=[2]) == 6 * 15
