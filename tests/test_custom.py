"""Bring your own data: manifests, validation, loading through MNE, and the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import _custom_set as cs
from kdlib import paths
from kdlib.data import cache, custom, dataset_dir, deap, load_windows
from kdlib.data.synthetic import SynthConfig, generate_subject
from kdlib.data.windows import PrepConfig

CONFIG = PrepConfig(window_s=2.0, stride_s=2.0)


@pytest.fixture
def manifest_file(tmp_path):
    return cs.small_set(tmp_path / "set")


def edit(manifest_file, doc_changes=None, rows=None):
    """Rewrite the manifest with ``doc_changes`` and/or a new trials table."""
    doc = yaml.safe_load(manifest_file.read_text())
    doc.update(doc_changes or {})
    manifest_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    if rows is not None:
        rows.to_csv(manifest_file.parent / "trials.csv", index=False)
    return custom.load_manifest(manifest_file)


def trials_of(manifest_file) -> pd.DataFrame:
    return pd.read_csv(manifest_file.parent / "trials.csv")


# --- loading ----------------------------------------------------------------------------------

def test_valid_set_loads_with_bipolar_eog_and_baseline(manifest_file):
    m = custom.load_manifest(manifest_file)
    assert custom.validate_manifest(m) == []
    assert m.subjects == ("p01", "p02") and m.recordings[0].path.is_absolute()
    rec = custom.load_subject(m, "p01")
    n = int((1.0 + 6.0) * cs.FS)  # 1 s baseline + 6 s trial
    assert rec.eeg.shape == (8, 3, n) and rec.eog.shape == (8, 2, n)
    assert rec.eog_channels == ("hEOG", "vEOG") and rec.eeg_channels == tuple(cs.EEG)
    assert rec.trial_ids.tolist() == list(range(1, 9)) and rec.baseline_s == 1.0
    # trial 5 is the first trial of run2 (seed 1), onset 5 s, baseline from 4 s
    signals = cs.random_signals(1)
    start = int(4.0 * cs.FS)
    expected_heog = signals["LO1"][start:start + n] - signals["LO2"][start:start + n]
    np.testing.assert_allclose(rec.eog[4, 0], expected_heog, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(rec.eog[4, 1], signals["VU"][start:start + n] - signals["VL"][start:start + n],
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(rec.eeg[4, 1], signals["Cz"][start:start + n], rtol=1e-5, atol=1e-3)
    rows = trials_of(manifest_file)
    np.testing.assert_allclose(rec.ratings[4], rows[["valence", "arousal", "dominance", "liking"]].to_numpy()[4],
                               rtol=1e-6)


def test_ready_made_eog_channel_is_taken_as_it_is(manifest_file):
    m = edit(manifest_file, {"channels": {"eeg": ["Fz"], "eog": {"EOG1": "LO1"}}})
    rec = custom.load_subject(m, "p02")
    start, n = int(4.0 * cs.FS), int(7.0 * cs.FS)
    np.testing.assert_allclose(rec.eog[0, 0], cs.random_signals(2)["LO1"][start:start + n], rtol=1e-5, atol=1e-3)


def test_resampling_keeps_frequency_and_duration(tmp_path):
    fs_in, seconds = 512.0, 30.0
    t = np.arange(int(fs_in * seconds)) / fs_in
    sine = 50.0 * np.sin(2 * np.pi * 10.0 * t)
    signals = {ch: sine for ch in cs.EEG + cs.EOG_ELECTRODES}
    cs.write_fif(tmp_path / "r_raw.fif", signals, fs_in)
    rows = [dict(subject="a", recording="r", trial=1, onset_s=10.0, duration_s=8.0, valence=3, arousal=7)]
    m = custom.load_manifest(cs.write_manifest(tmp_path, cs.manifest_doc([{"subject": "a", "id": "r",
                                                                          "file": "r_raw.fif"}]), rows))
    rec = custom.load_subject(m, "a")
    assert rec.fs == 128.0 and rec.n_samples == 8 * 128
    x = rec.eeg[0, 0].astype(float)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.fft.rfftfreq(len(x), 1 / 128.0)[np.argmax(spectrum)] == pytest.approx(10.0)
    expected = 50.0 * np.sin(2 * np.pi * 10.0 * (10.0 + np.arange(8 * 128) / 128.0))
    np.testing.assert_allclose(x, expected, atol=0.5)  # resampled sine, µV
    assert np.isnan(rec.rating("liking")).all() and rec.rating("valence")[0] == 3


def test_average_reference_and_band_pass_are_applied_to_the_eeg_only(manifest_file):
    m = edit(manifest_file, {"preprocessing": {"fs": 128, "eeg_band": [4, 30], "eeg_reference": "average"}})
    rec = custom.load_subject(m, "p02")
    np.testing.assert_allclose(rec.eeg.mean(axis=1), 0.0, atol=1e-3)  # average reference
    trials = rec.eeg[:, :, 128:]  # (n_trials, n_eeg, T) after the baseline
    freqs = np.fft.rfftfreq(trials.shape[-1], 1 / 128.0)
    power = (np.abs(np.fft.rfft(trials, axis=-1)) ** 2).mean(axis=(0, 1))
    assert power[(freqs > 8) & (freqs < 25)].mean() > 50 * power[freqs > 40].mean()  # white noise, filtered
    raw_eog = custom.load_subject(edit(manifest_file, {"preprocessing": {"fs": 128}}), "p02").eog
    np.testing.assert_array_equal(rec.eog, raw_eog)  # the EOG is not filtered here


def test_toml_manifest_equals_yaml(manifest_file):
    toml = manifest_file.with_suffix(".toml")
    lines = ['name = "test set"', 'trials = "trials.csv"']
    for r in custom.load_manifest(manifest_file).recordings:
        lines += ["[[recordings]]", f'subject = "{r.subject}"', f'id = "{r.recording}"',
                  f'file = "raw/{r.path.name}"']
    lines += ["[channels]", 'eeg = ["Fz", "Cz", "Pz"]', "[channels.eog]", 'hEOG = ["LO1", "LO2"]',
              'vEOG = ["VU", "VL"]', "[preprocessing]", "fs = 128.0", "[ratings]", "min = 1", "max = 9"]
    toml.write_text("\n".join(lines) + "\n")
    a, b = custom.load_manifest(manifest_file), custom.load_manifest(toml)
    assert (a.recordings, a.channels, a.preprocessing, a.trials) == (b.recordings, b.channels, b.preprocessing, b.trials)


# --- validation: each kind of problem ----------------------------------------------------------

def _kinds(problems):
    return sorted({p.kind for p in problems})


def test_missing_recording_and_trials_files(manifest_file):
    (manifest_file.parent / "raw" / "p02_run1_raw.fif").unlink()
    problems = custom.validate_manifest(manifest_file)
    assert _kinds(problems) == ["missing-file"] and "p02_run1_raw.fif" in problems[0].where
    (manifest_file.parent / "trials.csv").unlink()
    problems = custom.validate_manifest(manifest_file)
    assert [p.where.endswith("trials.csv") for p in problems if p.kind == "missing-file"] == [False, True]


def test_unknown_channels_are_named(manifest_file):
    m = edit(manifest_file, {"channels": {"eeg": ["Fz", "Oz"], "eog": {"hEOG": ["LO1", "RO2"]}}})
    problems = custom.validate_manifest(m)
    assert _kinds(problems) == ["unknown-channel"]
    assert len(problems) == 2 * 3  # two channels in each of the three recordings
    assert {p.where.split("channel ")[1] for p in problems} == {"'Oz'", "'RO2'"}


def test_trials_outside_a_recording(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[2, "onset_s"] = 36.0  # 36 + 6 > 40 s
    rows.loc[5, "baseline_onset_s"] = -0.5  # baseline before the start
    problems = custom.validate_manifest(edit(manifest_file, rows=rows))
    assert _kinds(problems) == ["trial-outside-recording"]
    assert [p.where.rsplit(":", 1)[1] for p in problems] == ["4", "7"]  # CSV lines (header = 1)


def test_ratings_out_of_range_or_missing(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[0, "valence"] = 10.0
    rows.loc[3, "liking"] = 0.0
    rows.loc[4, "arousal"] = np.nan
    problems = custom.validate_manifest(edit(manifest_file, rows=rows))
    assert _kinds(problems) == ["rating-out-of-range"] and len(problems) == 3
    assert "valence = 10" in str(problems[0]) and "liking = 0" in str(problems[1])
    assert "arousal is missing" in str(problems[2])


def test_duplicate_trial_ids(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[5, "trial"] = 2  # p01 run2 reuses trial 2 of run1
    problems = custom.validate_manifest(edit(manifest_file, rows=rows))
    assert _kinds(problems) == ["duplicate-trial"]
    assert "p01" in problems[0].message and "lines 3, 7" in problems[0].message


def test_unknown_recording_missing_column_and_unequal_durations(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[1, "recording"] = "run9"
    rows.loc[9, "duration_s"] = 5.0
    problems = custom.validate_manifest(edit(manifest_file, rows=rows))
    assert _kinds(problems) == ["bad-trial", "unknown-recording"]
    problems = custom.validate_manifest(edit(manifest_file, rows=rows.drop(columns="onset_s")))
    assert _kinds(problems) == ["missing-column"] and "onset_s" in problems[0].message


def test_rows_of_an_unknown_subject_are_reported(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[len(rows)] = rows.loc[0].to_dict() | {"subject": "p99"}
    problems = custom.validate_manifest(edit(manifest_file, rows=rows))
    assert _kinds(problems) == ["unknown-recording"] and "'p99'" in problems[0].message
    assert custom.validate_manifest(manifest_file, subjects=["p01"]) == []


def test_trials_of_unequal_length_cut_to_one_length(manifest_file):
    rows = trials_of(manifest_file)
    rows.loc[rows["subject"] == "p02", "duration_s"] = [6.0, 5.0, 7.0, 6.0]
    m = edit(manifest_file, rows=rows)
    assert _kinds(custom.validate_manifest(m, ["p02"])) == ["bad-trial"]
    m = edit(manifest_file, {"preprocessing": {"fs": 128, "trial_duration_s": 5.0}})
    assert custom.validate_manifest(m) == []
    assert custom.load_subject(m, "p02").n_samples == int((1.0 + 5.0) * cs.FS)
    m = edit(manifest_file, {"preprocessing": {"fs": 128, "trial_duration_s": 5.5}})
    assert _kinds(custom.validate_manifest(m)) == ["bad-trial"]  # the 5 s trial is too short


def test_several_problems_at_once_and_loading_refuses(manifest_file, tmp_path):
    (manifest_file.parent / "raw" / "p02_run1_raw.fif").unlink()
    rows = trials_of(manifest_file)
    rows.loc[0, "valence"] = 12.0
    rows.loc[1, "onset_s"] = 39.0
    rows.loc[3, "trial"] = 1
    m = edit(manifest_file, {"channels": {"eeg": ["Fz", "Xx"], "eog": {"hEOG": ["LO1", "LO2"]}}}, rows=rows)
    problems = custom.validate_manifest(m)
    assert _kinds(problems) == ["duplicate-trial", "missing-file", "rating-out-of-range",
                                "trial-outside-recording", "unknown-channel"]
    with pytest.raises(custom.ManifestError) as info:
        custom.prepare_custom(m, CONFIG, cache_dir=tmp_path / "cache", progress=False)
    assert len(info.value.problems) == len(problems)
    assert all(str(p) in str(info.value) for p in problems)
    assert not (tmp_path / "cache").exists()


def test_structural_problems_are_listed_together(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text(yaml.safe_dump({"trials": "t.csv", "recordings": [{"subject": "a b", "file": "x.edf"}],
                                   "channels": {"eeg": [], "eog": {"hEOG": ["A", "B", "C"]}},
                                   "preprocessing": {"fs": 128, "eeg_band": [40, 80]}, "colour": "red"}))
    with pytest.raises(custom.ManifestError) as info:
        custom.load_manifest(bad)
    messages = str(info.value)
    for part in ("unknown key(s) ['colour']", "'a b'", "'channels.eeg'", "'channels.eog.hEOG'", "eeg_band"):
        assert part in messages
    assert len(info.value.problems) == 5
    bad.write_text("trials: [unclosed\n")
    with pytest.raises(custom.ManifestError, match="not valid YAML"):
        custom.load_manifest(bad)
    with pytest.raises(custom.ManifestError, match="manifest file not found"):
        custom.load_manifest(tmp_path / "nope.yaml")


# --- cache and the data-set entry points --------------------------------------------------------

def test_prepare_custom_caches_and_keys_on_rows_and_files(manifest_file, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"
    first = custom.prepare_custom(manifest_file, CONFIG, cache_dir=cdir, progress=False)
    assert first.subjects() == ["p01", "p02"] and len(first) == (8 + 4) * 3
    assert first.eog_channels == ("hEOG", "vEOG")
    entries = sorted(p.name for p in cdir.glob("*-*"))
    assert len(entries) == 2

    def must_not_load(*args, **kwargs):
        raise AssertionError("recording read although a cache entry exists")

    monkeypatch.setattr(custom.caching, "load_subject", must_not_load)  # the name prepare_custom calls
    again = custom.prepare_custom(manifest_file, CONFIG, cache_dir=cdir, progress=False)
    np.testing.assert_array_equal(first.eog, again.eog)
    monkeypatch.undo()
    rows = trials_of(manifest_file)
    rows.loc[rows["subject"] == "p02", "valence"] = 2.0  # p02's rows change, p01's do not
    edit(manifest_file, rows=rows)
    custom.prepare_custom(manifest_file, CONFIG, cache_dir=cdir, progress=False)
    after = sorted(p.name for p in cdir.glob("*-*"))
    assert len(after) == 3 and [e for e in after if e.startswith("p01")] == [e for e in entries if e.startswith("p01")]
    m = custom.load_manifest(manifest_file)
    table, _ = custom.read_trials(m)
    key = cache.cache_key(custom.source_files(m, "p01"), CONFIG, extra=custom.caching._cache_text(m, table, "p01"))
    cs.write_fif(m.recordings[1].path, cs.random_signals(7), cs.FS)  # p01 run2 changes
    assert cache.cache_key(custom.source_files(m, "p01"), CONFIG, extra=custom.caching._cache_text(m, table, "p01")) != key


def test_load_windows_and_dataset_dir_for_custom(manifest_file, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA_DIR", str(tmp_path / "kdlib-data"))
    ws = load_windows("custom", manifest=manifest_file, subjects=["p02"], config=CONFIG, progress=False)
    assert ws.subjects() == ["p02"] and len(ws) == 4 * 3
    assert dataset_dir("custom", manifest=manifest_file) == manifest_file.parent
    with pytest.raises(FileNotFoundError, match="needs a manifest"):
        dataset_dir("custom")
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_windows("custom", manifest=tmp_path / "missing.yaml")
    with pytest.raises(custom.ManifestError, match="subject list is empty"):
        custom.prepare_custom(manifest_file, CONFIG, subjects=[], progress=False)


# --- the same signals through DEAP's loader and through a manifest ------------------------------

def test_custom_set_from_synthetic_deap_matches_the_deap_loader(tmp_path):
    arrays = generate_subject(0, SynthConfig(n_subjects=1, n_trials=3))
    data, labels = arrays["data"], arrays["labels"]  # (3, 40, 8064) µV, (3, 4)
    dat = deap.save_dat(tmp_path / "deap" / "s01.dat", data, labels)
    # one continuous recording: trials back to back; the EOG as monopolar electrode pairs
    continuous = np.concatenate(list(data), axis=1)  # (40, 3 * 8064)
    common = np.sin(np.arange(continuous.shape[1]) / 50.0) * 300.0  # cancels in the difference
    signals = {ch: continuous[i] for i, ch in enumerate(deap.EEG_CHANNELS)}
    signals |= {"LO1": continuous[32] + common, "LO2": common, "VU": continuous[33] / 2 + common,
                "VL": -continuous[33] / 2 + common}
    cs.write_fif(tmp_path / "s01_raw.fif", signals, deap.FS)
    rows = [dict(subject="s01", recording="r", trial=k + 1, onset_s=k * 63.0 + 3.0, duration_s=60.0,
                 baseline_s=3.0, valence=v, arousal=a, dominance=d, liking=li)
            for k, (v, a, d, li) in enumerate(labels)]
    doc = cs.manifest_doc([{"subject": "s01", "id": "r", "file": "s01_raw.fif"}],
                          channels={"eeg": list(deap.EEG_CHANNELS),
                                    "eog": {"hEOG": ["LO1", "LO2"], "vEOG": ["VU", "VL"]}})
    manifest = cs.write_manifest(tmp_path, doc, rows)
    mine = custom.prepare_custom(manifest, PrepConfig(), use_cache=False, progress=False)
    theirs = cache.prepare_dataset(dat.parent, PrepConfig(), use_cache=False, progress=False)
    assert len(mine) == len(theirs) == 3 * 15
    np.testing.assert_allclose(mine.eeg, theirs.eeg, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mine.eog, theirs.eog, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(mine.ratings, theirs.ratings, rtol=1e-6)
    for name in ("subject", "trial", "start_s"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))
    assert (mine.eeg_channels, mine.eog_channels, mine.fs) == (theirs.eeg_channels, theirs.eog_channels, theirs.fs)


# --- the real EEG + EOG recording ---------------------------------------------------------------

EEGLAB = paths.eeglab_tutorial_dir()


@pytest.mark.skipif(not (EEGLAB / "test_raw.set").is_file(), reason="../shared/data/eeglab_tutorial not present")
def test_real_eeglab_recording_through_a_manifest(tmp_path):
    """The EEGLAB tutorial recording (a visual attention task, not emotion data): its `square`
    events become trials; the ratings are MADE UP, to demonstrate the format only."""
    import mne

    names = [line.split()[-1] for line in (EEGLAB / "test_chans.locs").read_text().splitlines() if line.strip()]
    raw = mne.io.read_raw_eeglab(EEGLAB / "test_raw.set", preload=False, verbose="error")
    squares = raw.annotations.onset[raw.annotations.description == "square"]
    gaps_after = np.diff(np.append(squares, raw.n_times / raw.info["sfreq"]))
    gaps_before = np.diff(np.insert(squares, 0, 0.0))
    onsets = squares[(gaps_after >= 2.0) & (gaps_before >= 0.5)]  # 0.5 s baseline + 2 s, no overlap
    rng = np.random.default_rng(0)
    rows = [dict(subject="eeglab", recording="tutorial", trial=i + 1, onset_s=float(o), duration_s=2.0,
                 baseline_s=0.5, valence=float(rng.integers(1, 10)), arousal=float(rng.integers(1, 10)))
            for i, o in enumerate(onsets)]
    eeg = [n for n in names if not n.startswith("EOG")]
    doc = cs.manifest_doc([{"subject": "eeglab", "id": "tutorial", "file": str(EEGLAB / "test_raw.set")}],
                          channels={"eeg": eeg, "eog": {"EOG1": "EOG1", "EOG2": "EOG2"},
                                    "rename": dict(zip(raw.ch_names, names))},
                          preprocessing={"fs": 128, "eeg_band": [1, 40], "eeg_reference": "average"})
    manifest = cs.write_manifest(tmp_path, doc, rows)
    assert custom.check_manifest_file(manifest)[1] == []
    rec = custom.load_subject(manifest, "eeglab")
    assert len(onsets) >= 20 and rec.eeg.shape == (len(onsets), 30, int(2.5 * 128))
    assert rec.eog_channels == ("EOG1", "EOG2") and rec.eeg_channels == tuple(eeg)
    assert 1.0 < np.median(np.abs(rec.eeg)) < 200.0  # µV
    ws = custom.prepare_custom(manifest, PrepConfig(window_s=1.0, stride_s=1.0), use_cache=False, progress=False)
    assert ws.eeg.shape == (2 * len(onsets), 30, 128) and np.isfinite(ws.eog).all()
    assert sorted(p.name for p in custom.source_files(custom.load_manifest(manifest), "eeglab")) == [
        "test_raw.fdt", "test_raw.set"]
