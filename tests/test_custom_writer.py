"""kdlib.data.custom.writing: EDF/BDF recordings written from arrays, and notebook 06's example set."""

from __future__ import annotations

import edfio
import mne
import numpy as np
import pytest

from kdlib.data import custom


def _signals(n_times=1280, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 20, (3, n_times)), 300 + rng.normal(0, 80, (2, n_times))  # EEG, EOG (µV)


@pytest.mark.parametrize("fmt, read", [("edf", edfio.read_edf), ("bdf", edfio.read_bdf)])
def test_quantisation_step_is_the_header_step(tmp_path, fmt, read):
    eeg, eog = _signals()
    path = custom.write_recording(tmp_path / f"r.{fmt}", eeg, eog, 128, ["Fz", "Cz", "Pz"], ["LO", "RO"], fmt)
    for s in read(path).signals:
        header = (s.physical_max - s.physical_min) / (s.digital_max - s.digital_min)
        assert custom.quantisation_step(s.physical_min, s.physical_max, fmt) == pytest.approx(header, rel=1e-12)
        assert s.digital_max == custom.DIGITAL_MAX[fmt] == -s.digital_min


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
def test_round_trip_is_exact_to_half_a_step(tmp_path, fmt):
    eeg, eog = _signals()
    path = custom.write_recording(tmp_path / f"r.{fmt}", eeg, eog, 128, ["Fz", "Cz", "Pz"], ["LO", "RO"], fmt)
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    assert raw.ch_names == ["Fz", "Cz", "Pz", "LO", "RO"] and raw.info["sfreq"] == 128
    back = raw.get_data() * 1e6  # (5, T) µV
    for rows, written in ((slice(0, 3), eeg), (slice(3, 5), eog)):
        step = custom.quantisation_step(written.min(), written.max(), fmt)
        assert np.abs(back[rows] - written).max() <= 0.51 * step + 1e-9
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_bdf_step_is_256_times_finer():
    assert custom.quantisation_step(-80, 80, "edf") / custom.quantisation_step(-80, 80, "bdf") == pytest.approx(
        (2 ** 23 - 1) / (2 ** 15 - 1))
    assert custom.quantisation_step(-80, 80) == pytest.approx(160 / 65534)


def test_bad_arguments_fail_early(tmp_path):
    eeg, eog = _signals()
    with pytest.raises(ValueError, match="fmt must be"):
        custom.quantisation_step(0, 1, "gdf")
    with pytest.raises(ValueError, match="empty"):
        custom.quantisation_step(5, 5)
    with pytest.raises(ValueError, match="do not match"):
        custom.write_recording(tmp_path / "r.edf", eeg, eog[:, :10], 128, ["Fz", "Cz", "Pz"], ["LO", "RO"])
    with pytest.raises(RuntimeError, match="16 characters"):  # MNE refuses EDF's long labels: nothing is left
        custom.write_recording(tmp_path / "r.edf", eeg, eog, 128, ["Fz", "Cz", "a_very_long_label_x"], ["LO", "RO"])
    assert not list(tmp_path.iterdir())


def test_monopolar_eog_differences_are_the_bipolar_eog():
    rng = np.random.default_rng(1)
    heog, veog = rng.normal(0, 50, 640), rng.normal(0, 80, 640)
    lo, ro, so, io = custom.monopolar_eog(heog, veog, 128, np.random.default_rng(2))
    np.testing.assert_allclose(lo - ro, heog, atol=1e-9)
    np.testing.assert_allclose(so - io, veog, atol=1e-9)
    assert abs(np.mean(lo + ro)) > 1 or abs(np.mean(so + io)) > 1  # the offsets are there


def test_example_set_is_deterministic_and_validates(tmp_path):
    a = custom.write_example_set(tmp_path / "a", n_subjects=2, n_trials=2, seed=3)
    b = custom.write_example_set(tmp_path / "b", n_subjects=2, n_trials=2, seed=3)
    assert [r["file"] for r in a.recordings] == ["raw/p01_run1.edf", "raw/p01_run2.edf", "raw/p02_run1.edf"]
    assert a.trials.equals(b.trials) and len(a.trials) == 4
    assert list(a.trials["onset_s"]) == [3.0, 3.0, 3.0, 66.0]  # p01: one trial a recording; p02 end to end
    ra = mne.io.read_raw_edf(tmp_path / "a/raw/p02_run1.edf", preload=True, verbose="error").get_data()
    rb = mne.io.read_raw_edf(tmp_path / "b/raw/p02_run1.edf", preload=True, verbose="error").get_data()
    np.testing.assert_array_equal(ra, rb)
    eeg, bipolar, mono = a.originals[("p02", "run1")]
    assert eeg.shape == (32, 2 * 8064) and bipolar.shape == (2, 2 * 8064) and mono.shape == (4, 2 * 8064)
    recs = "\n".join(f"  - {{subject: {r['subject']}, id: {r['id']}, file: {r['file']}}}" for r in a.recordings)
    (tmp_path / "a/m.yaml").write_text(
        f"trials: trials.csv\nrecordings:\n{recs}\nchannels:\n  eeg: [Fp1, Fp2]\n"
        "  eog: {hEOG: [LO, RO], vEOG: [SO, IO]}\npreprocessing: {fs: 128}\nratings: {min: 1, max: 9}\n")
    manifest, problems = custom.check_manifest_file(tmp_path / "a/m.yaml")
    assert problems == []
    rec = custom.load_subject(manifest, "p02")
    # the derivations give back the generator's bipolar EOG of the first trial (to a step of the EOG's range)
    np.testing.assert_allclose(rec.eog[0, :, : 8064], bipolar[:, :8064], atol=0.05)


def test_isolated_onsets():
    onsets = [0.2, 1.0, 5.0, 6.0, 9.0, 11.5]
    keep = custom.isolated_onsets(onsets, end_s=13.0, baseline_s=0.5, duration_s=2.0)
    # 0.2: baseline before the start; 1.0: next at 5 (ok), previous 0.8 before (ok); 5.0: next 1 s later;
    # 6.0: previous 1 s before, next 3 s later; 9.0: next 2.5 s later; 11.5: 1.5 s to the end
    assert keep.tolist() == [False, True, False, True, True, False]
    assert custom.isolated_onsets([], 10.0, 0.5, 2.0).tolist() == []
    with pytest.raises(ValueError, match="increasing"):
        custom.isolated_onsets([2.0, 1.0], 10.0, 0.5, 2.0)
