"""The synthetic DEAP-format generator: file format, determinism and the built-in effects."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks
from scipy.stats import spearmanr

from kdlib import cli
from kdlib.data import deap
from kdlib.data import synthetic as syn

FS = int(deap.FS)
BASE = 384  # samples of pre-trial baseline
TINY = syn.SynthConfig(n_subjects=2, n_trials=3, seed=7)  # for format and I/O tests
LEFT_FRONTAL = ["F3", "F7", "AF3", "Fp1", "FC5"]
RIGHT_FRONTAL = ["F4", "F8", "AF4", "Fp2", "FC6"]


#: The EEG effects of the ``privileged`` preset (version 1's sizes, 2.5 x the default) and the
#: default EOG: large enough to see each mechanism on one subject (the default's are calibrated
#: to DEAP-like accuracies, benchmarks/calibrate_synthetic.py).
EEG_EFFECTS = {k: getattr(syn.PRIVILEGED, k) for k in ("valence_alpha_asymmetry", "valence_temporal_beta",
                                                       "arousal_posterior_alpha", "arousal_beta", "arousal_theta")}


@pytest.fixture(scope="module")
def subject():
    """One subject with 80 trials (enough for stable per-trial correlations)."""
    return syn.generate_subject(0, replace(syn.DEFAULT, n_trials=80, seed=3, **EEG_EFFECTS))


def _power(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mean power in [lo, hi) Hz along the last axis."""
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / FS)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
    return spec[..., (freqs >= lo) & (freqs < hi)].mean(axis=-1)


def _frontal_asymmetry(eeg: np.ndarray, alpha_hz=(8.0, 13.0)) -> np.ndarray:
    """(n_trials,) log alpha power right minus left frontal (higher = relatively less left)."""
    idx = {ch: i for i, ch in enumerate(deap.EEG_CHANNELS)}
    power = np.log(_power(eeg, *alpha_hz))  # (n_trials, 32)
    right = power[:, [idx[c] for c in RIGHT_FRONTAL]].mean(axis=1)
    left = power[:, [idx[c] for c in LEFT_FRONTAL]].mean(axis=1)
    return right - left


# --- format and files ---------------------------------------------------------------------------

def test_write_dataset_loads_back_through_the_deap_loader(tmp_path):
    paths = syn.write_dataset(tmp_path, TINY, progress=False)
    assert [p.name for p in paths] == ["s01.dat", "s02.dat"]
    assert deap.subject_files(tmp_path) == paths
    arrays = deap.load_dat(paths[0])
    assert arrays["data"].shape == (3, 40, 8064) and arrays["data"].dtype == np.float64
    assert arrays["labels"].shape == (3, 4)
    assert ((arrays["labels"] >= 1) & (arrays["labels"] <= 9)).all()
    rec = deap.load_subject(paths[1])
    assert rec.subject == "s02"
    assert rec.eeg.shape == (3, 32, 8064) and rec.eog.shape == (3, 2, 8064)
    stored = json.loads((tmp_path / syn.CONFIG_FILE).read_text())
    assert stored == TINY.to_json()
    np.testing.assert_array_equal(arrays["data"], syn.generate_subject(0, TINY)["data"])


def test_ratings_follow_the_latent_and_are_balanced(subject):
    labels, latent = subject["labels"], subject["latent"]
    assert labels.shape == (80, 4) and latent.shape == (80, 2)
    assert labels.min() >= 1 and labels.max() <= 9
    for k in (0, 1):
        assert 0.35 < (labels[:, k] > 5).mean() < 0.65
        assert 0.75 < np.corrcoef(labels[:, k], latent[:, k])[0, 1] < 0.995  # noisy, related
    assert np.corrcoef(labels[:, 0], labels[:, 3])[0, 1] > 0.4  # liking follows valence


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_other_seed_differs():
    a = syn.generate_subject(1, TINY)
    b = syn.generate_subject(1, TINY)
    assert a["data"].tobytes() == b["data"].tobytes()
    assert a["labels"].tobytes() == b["labels"].tobytes()
    c = syn.generate_subject(1, replace(TINY, seed=8))
    assert not np.allclose(a["data"], c["data"])
    assert not np.array_equal(a["labels"], c["labels"])
    d = syn.generate_subject(0, TINY)
    assert not np.allclose(a["data"], d["data"])  # subjects differ


def test_a_subject_does_not_depend_on_how_many_subjects_are_written():
    a = syn.generate_subject(1, replace(TINY, n_subjects=2))
    b = syn.generate_subject(1, replace(TINY, n_subjects=30))
    assert a["data"].tobytes() == b["data"].tobytes()


# --- the built-in effects ------------------------------------------------------------------------

def test_valence_asymmetry_appears_after_the_baseline_only(subject):
    eeg, valence = subject["data"][:, :32], subject["latent"][:, 0]
    baseline = _frontal_asymmetry(eeg[..., :BASE])
    # the same 3 s estimator on 3 s pieces of the video, averaged (same length, same bias)
    pieces = np.mean([_frontal_asymmetry(eeg[..., BASE * k: BASE * (k + 1)])
                      for k in range(2, eeg.shape[-1] // BASE)], axis=0)
    assert spearmanr(valence, pieces)[0] > 0.5
    assert abs(spearmanr(valence, baseline)[0]) < 0.25
    high, low = valence > 5, valence < 5
    assert pieces[high].mean() - pieces[low].mean() > 0.2
    assert abs(baseline[high].mean() - baseline[low].mean()) < 0.1


def test_arousal_lowers_posterior_alpha_after_the_baseline(subject):
    idx = [deap.EEG_CHANNELS.index(c) for c in ("PO3", "PO4", "O1", "O2", "Oz", "Pz")]
    eeg, arousal = subject["data"][:, idx], subject["latent"][:, 1]
    trial = np.log(_power(eeg[..., BASE + FS:], 8, 13)).mean(axis=1)
    baseline = np.log(_power(eeg[..., :BASE], 8, 13)).mean(axis=1)
    assert spearmanr(arousal, trial)[0] < -0.4
    assert abs(spearmanr(arousal, baseline)[0]) < 0.25


def _blinks_per_minute(veog: np.ndarray) -> np.ndarray:
    """(n_trials,) blinks per minute after the baseline, from peaks of the 0.5-8 Hz vEOG."""
    seg = veog[:, BASE:]
    freqs = np.fft.rfftfreq(seg.shape[1], 1 / FS)
    filtered = np.fft.irfft(np.fft.rfft(seg) * ((freqs > 0.5) & (freqs < 8)), n=seg.shape[1])
    counts = [len(find_peaks(x, height=40, distance=int(0.3 * FS))[0]) for x in filtered]
    return np.array(counts) / (seg.shape[1] / FS / 60)


def test_blink_rate_rises_with_arousal(subject):
    rate = _blinks_per_minute(subject["data"][:, 33])
    arousal = subject["latent"][:, 1]
    assert 3 < np.median(rate) < 40  # plausible blink rates
    assert spearmanr(arousal, rate)[0] > 0.4
    assert rate[arousal > 6.5].mean() > 1.3 * rate[arousal < 3.5].mean()


def _alpha_peak(data: np.ndarray) -> float:
    """Peak frequency (Hz) of the smoothed 6-15 Hz posterior spectrum after the baseline."""
    idx = [deap.EEG_CHANNELS.index(c) for c in ("PO3", "PO4", "O1", "O2", "Oz")]
    seg = data[:, idx, BASE:]  # (n_trials, 5, n)
    freqs = np.fft.rfftfreq(seg.shape[-1], 1 / FS)
    spectrum = (np.abs(np.fft.rfft(seg, axis=-1)) ** 2).mean(axis=(0, 1))
    band = (freqs > 6) & (freqs < 15)
    return freqs[band][np.argmax(np.convolve(spectrum[band], np.ones(15) / 15, mode="same"))]


def test_each_subject_has_its_own_alpha_peak():
    cfg = replace(syn.DEFAULT, n_trials=12, seed=3)
    truth = [syn.subject_parameters(i, cfg)["alpha_hz"] for i in range(8)]
    assert all(8.5 <= f <= 11.5 for f in truth)
    lowest, highest = int(np.argmin(truth)), int(np.argmax(truth))
    assert truth[highest] - truth[lowest] > 1.5
    for i in (lowest, highest):
        assert abs(_alpha_peak(syn.generate_subject(i, cfg)["data"]) - truth[i]) < 0.6


# --- signal processing as in DEAP's preprocessed release ----------------------------------------

def test_eeg_is_band_limited_and_average_referenced(subject):
    eeg = subject["data"][:, :32]  # (n_trials, 32, 8064)
    scale = eeg.std()
    assert 3 < scale < 30  # microvolts
    assert np.abs(eeg.mean(axis=1)).max() < 1e-9 * scale  # common average reference
    freqs = np.fft.rfftfreq(eeg.shape[-1], 1 / FS)
    power = (np.abs(np.fft.rfft(eeg[:10], axis=-1)) ** 2).sum(axis=(0, 1))
    total = power.sum()
    assert power[freqs < 3].sum() < 1e-10 * total
    assert power[freqs > 46].sum() < 1e-10 * total
    assert power[(freqs > 30) & (freqs < 45)].sum() > 1e-3 * total  # beta/gamma are there


def test_eog_is_unfiltered(subject):
    eog = subject["data"][:, 32:34]  # (n_trials, 2, 8064)
    freqs = np.fft.rfftfreq(eog.shape[-1], 1 / FS)
    centred = eog - eog.mean(axis=-1, keepdims=True)
    power = (np.abs(np.fft.rfft(centred, axis=-1)) ** 2).sum(axis=0)  # (2, n_freq)
    slow = power[:, (freqs > 0) & (freqs < 1)].sum(axis=1) / power.sum(axis=1)
    assert (slow > 0.2).all()  # drift and gaze: much power below 1 Hz (EEG has none < 3 Hz)
    assert np.abs(eog.mean(axis=-1)).mean() > 10  # DC offsets kept


def test_peripheral_channels_are_finite_and_plausible(subject):
    periph = subject["data"][:, 34:]
    assert np.isfinite(periph).all()
    assert 25 < periph[:, 5].mean() < 38  # skin temperature, deg C
    assert periph[:, 2].min() > 0  # skin conductance, uS


# --- folder handling ---------------------------------------------------------------------------

def test_existing_files_with_the_same_config_are_kept(tmp_path):
    paths = syn.write_dataset(tmp_path, TINY, progress=False)
    stamps = [p.stat().st_mtime_ns for p in paths]
    paths[1].unlink()
    again = syn.write_dataset(tmp_path, TINY, progress=False)
    assert again == paths and paths[0].stat().st_mtime_ns == stamps[0]  # kept
    assert paths[1].is_file()  # the missing one regenerated
    np.testing.assert_array_equal(deap.load_dat(paths[1])["data"],
                                  syn.generate_subject(1, TINY)["data"])


def test_another_config_regenerates_and_removes_stale_subjects(tmp_path):
    syn.write_dataset(tmp_path, TINY, progress=False)
    other = replace(TINY, n_subjects=1, seed=99)
    paths = syn.write_dataset(tmp_path, other, progress=False)
    assert sorted(p.name for p in tmp_path.glob("s*.dat")) == ["s01.dat"]
    np.testing.assert_array_equal(deap.load_dat(paths[0])["data"],
                                  syn.generate_subject(0, other)["data"])
    assert json.loads((tmp_path / syn.CONFIG_FILE).read_text())["seed"] == 99


def test_a_folder_of_foreign_subject_files_is_never_touched(tmp_path):
    foreign = tmp_path / "s01.dat"
    foreign.write_bytes(b"real DEAP, say")
    for overwrite in (False, True):
        with pytest.raises(syn.SyntheticDataError, match="did not write"):
            syn.write_dataset(tmp_path, TINY, overwrite=overwrite, progress=False)
    assert foreign.read_bytes() == b"real DEAP, say"


# --- the EEG -> EOG path and the ground truth ---------------------------------------------------

#: sha256 of generator version 1's EOG (channels 33-34, float64 bytes) of subject s02 of TINY,
#: computed with version 1 before the path existed. Version 2 changed only EEG knobs' defaults and
#: added the path, which draws no random numbers: at eeg_to_eog=0 the EOG must not move.
V1_EOG_SHA256 = "2ed98df6650506878439867a013373abcc6679796d3d197ee80c33bef9da5f64"


def test_without_the_path_the_eog_is_version_1s_byte_for_byte():
    import hashlib

    eog = syn.generate_subject(1, replace(TINY, eeg_to_eog=0.0))["data"][:, 32:34]
    assert hashlib.sha256(np.ascontiguousarray(eog).tobytes()).hexdigest() == V1_EOG_SHA256


def test_the_path_adds_frontal_eeg_to_the_eog_linearly():
    """EOG(g) - EOG(0) is g x (F7 - F8, Fp1) of the scalp EEG: linear in g, nothing else moves."""
    runs = {g: syn.generate_subject(0, replace(TINY, eeg_to_eog=g))["data"] for g in (0.0, 0.5, 1.0)}
    added = {g: runs[g][:, 32:34] - runs[0.0][:, 32:34] for g in (0.5, 1.0)}  # (n, 2, T)
    np.testing.assert_allclose(added[1.0], 2 * added[0.5], atol=1e-9)
    assert 1 < added[0.5].std() < 20  # microvolts of EEG, small beside blinks and drift
    for g in (0.5, 1.0):  # EEG and peripheral channels untouched
        np.testing.assert_array_equal(runs[g][:, :32], runs[0.0][:, :32])
        np.testing.assert_array_equal(runs[g][:, 34:], runs[0.0][:, 34:])
    # in the alpha band the added hEOG follows F7 - F8 of the (band-passed, referenced) EEG
    eeg = runs[0.0][:, :32]
    f7, f8 = deap.EEG_CHANNELS.index("F7"), deap.EEG_CHANNELS.index("F8")
    alpha = lambda x: np.fft.irfft(np.fft.rfft(x) * _alpha_mask(x.shape[-1]), n=x.shape[-1])  # noqa: E731
    r = np.corrcoef(alpha(added[1.0][:, 0]).ravel(), alpha(eeg[:, f7] - eeg[:, f8]).ravel())[0, 1]
    assert r > 0.9


def _alpha_mask(n: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1 / FS)
    return ((freqs > 8) & (freqs < 13)).astype(float)


def test_ground_truth_is_written_beside_the_files(tmp_path):
    syn.write_dataset(tmp_path, TINY, progress=False)
    truth = pd.read_csv(tmp_path / syn.GROUND_TRUTH_FILE)
    assert len(truth) == TINY.n_subjects * TINY.n_trials
    assert truth["subject"].tolist() == ["s01"] * 3 + ["s02"] * 3 and truth["trial"].tolist() == [0, 1, 2] * 2
    arrays = syn.generate_subject(1, TINY)
    mine = truth[truth["subject"] == "s02"]
    np.testing.assert_allclose(mine[["latent_valence", "latent_arousal"]], arrays["latent"])
    np.testing.assert_allclose(mine[["rating_valence", "rating_arousal"]], arrays["labels"][:, :2])
    assert {"eeg__frontal_alpha_asym_gain", "eog__blink_rate_gain", "eog__saccade_rate_gain",
            "eog__blink_amp_gain", "eog__eeg_path_alpha_front_L_log_gain"} <= set(truth)
    no_path = syn.generate_subject(0, replace(TINY, eeg_to_eog=0))["truth"]
    assert not any(c.startswith("eog__eeg_path_") for c in no_path)


def test_ground_truth_survives_kept_files_and_fewer_subjects(tmp_path):
    syn.write_dataset(tmp_path, TINY, progress=False)
    first = (tmp_path / syn.GROUND_TRUTH_FILE).read_text()
    (tmp_path / syn.GROUND_TRUTH_FILE).unlink()  # e.g. interrupted before it was written
    stamp = (tmp_path / "s01.dat").stat().st_mtime_ns
    syn.write_dataset(tmp_path, TINY, progress=False)
    assert (tmp_path / syn.GROUND_TRUTH_FILE).read_text() == first  # regenerated, identical
    assert (tmp_path / "s01.dat").stat().st_mtime_ns == stamp  # the file itself was kept
    syn.write_dataset(tmp_path, replace(TINY, n_subjects=1), progress=False)
    assert set(pd.read_csv(tmp_path / syn.GROUND_TRUTH_FILE)["subject"]) == {"s01"}


def test_ground_truth_follows_the_latent(subject):
    truth, latent = subject["truth"], subject["latent"]
    assert spearmanr(latent[:, 0], truth["eeg__frontal_alpha_asym_gain"])[0] > 0.5
    assert spearmanr(latent[:, 1], truth["eog__blink_rate_gain"])[0] > 0.4
    assert spearmanr(latent[:, 0], truth["eog__saccade_rate_gain"])[0] > 0.3
    assert spearmanr(latent[:, 1], truth["eeg__alpha_post_L_log_gain"])[0] < -0.3


# --- configuration, description, command line ----------------------------------------------

def test_presets_and_validation():
    assert (syn.SMOKE.n_subjects, syn.DEFAULT.n_subjects, syn.FULL.n_subjects) == (3, 8, 32)
    assert syn.FULL.n_trials == 40
    assert {"smoke", "default", "full", "privileged", "no_path"} <= set(syn.PRESETS)
    assert syn.PRESETS["no_path"].eeg_to_eog == 0 and syn.DEFAULT.eeg_to_eog > 0
    priv = syn.PRESETS["privileged"]
    assert priv.valence_alpha_asymmetry > syn.DEFAULT.valence_alpha_asymmetry
    assert priv.arousal_blink_rate < syn.DEFAULT.arousal_blink_rate
    with pytest.raises(syn.SyntheticDataError, match="n_trials"):
        syn.SynthConfig(n_trials=1)
    with pytest.raises(syn.SyntheticDataError, match="negative"):
        syn.SynthConfig(rating_noise_sd=-1.0)
    with pytest.raises(syn.SyntheticDataError, match="negative.*eeg_to_eog"):
        syn.SynthConfig(eeg_to_eog=-0.5)
    with pytest.raises(syn.SyntheticDataError, match="finite.*eeg_to_eog"):
        syn.SynthConfig(eeg_to_eog=float("nan"))
    with pytest.raises(AttributeError):
        syn.DEFAULT.seed = 1  # frozen


def test_describe_lists_the_built_in_effects():
    table = syn.describe(replace(syn.DEFAULT, arousal_blink_rate=0.123))
    assert isinstance(table, pd.DataFrame) and len(table) >= 10
    text = table.to_string()
    assert "0.123" in text and "asymmetry" in text and "not modelled" in text


def test_cli_writes_files(tmp_path, capsys):
    rc = cli.main(["synth", "--out", str(tmp_path), "--preset", "smoke", "--subjects", "1",
                   "--trials", "2", "--seed", "5", "--quiet"])
    assert rc == 0
    data = deap.load_dat(tmp_path / "s01.dat")
    assert data["data"].shape == (2, 40, 8064)
    assert json.loads((tmp_path / syn.CONFIG_FILE).read_text())["seed"] == 5
    assert cli.main(["synth", "--out", str(tmp_path), "--preset", "no_path", "--subjects", "1", "--trials", "2",
                     "--eeg-to-eog", "0.25", "--rating-noise-sd", "0", "--quiet"]) == 0
    stored = json.loads((tmp_path / syn.CONFIG_FILE).read_text())
    assert (stored["eeg_to_eog"], stored["rating_noise_sd"]) == (0.25, 0.0)


def test_cli_rejects_a_bad_preset_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kdlib", "synth", "--preset", "huge",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "huge" in lines[0] and "smoke" in lines[0]
    assert not list(tmp_path.iterdir())


def test_cli_reports_a_bad_value_in_one_line(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path), "--trials", "1", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_trials" in err[0]
