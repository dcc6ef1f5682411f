"""Ceilings from the synthetic ground truth: label ceiling, modality oracles, share of the gap."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kdlib import ceilings, stats
from kdlib.data import synthetic as syn
from kdlib.evaluate import DataSpec, ProtocolConfig, load_results, run_protocol

BASE = syn.SynthConfig(n_subjects=3, n_trials=40, seed=11)
EOG_OFF = dict(arousal_blink_rate=0.0, arousal_blink_amp=0.0, valence_saccade_rate=0.0, eeg_to_eog=0.0)
PROTOCOL = ProtocolConfig(seeds=(0,), methods=("majority",))


def _spec(root, name: str, config: syn.SynthConfig) -> DataSpec:
    folder = root / name
    syn.write_dataset(folder, config, progress=False)
    return DataSpec(dataset="synthetic", data_dir=str(folder), cache_dir=str(root / "cache"))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ceilings")


@pytest.fixture(scope="module")
def default_ceilings(root):
    spec = _spec(root, "default", BASE)
    return spec, ceilings.fold_ceilings(spec, PROTOCOL)


# --- the label ceiling -----------------------------------------------------------------------

def test_label_probability_is_the_gaussian_tail_and_respects_clipping():
    latent = np.array([1.0, 4.0, 5.0, 6.0, 9.0])
    p = ceilings.label_probability(latent, 1.0)
    np.testing.assert_allclose(p, [0.00003167, 0.15865525, 0.5, 0.84134475, 0.99996833], atol=1e-7)
    np.testing.assert_array_equal(ceilings.label_probability(latent, 0.0), [0, 0, 0, 1, 1])  # 5 is low
    np.testing.assert_array_equal(ceilings.label_probability(latent, 0.0, rule=">="), [0, 0, 1, 1, 1])
    assert (ceilings.label_probability(latent, 1.0, threshold=9.0) == 0).all()  # no clipped rating exceeds 9
    np.testing.assert_allclose(ceilings.label_probability(latent, 1.0, threshold=9.0, rule=">="),
                               [0.0, 2.9e-7, 3.17e-5, 0.0013499, 0.5], atol=1e-7)  # a clipped 9 counts
    assert (ceilings.label_probability(latent, 1.0, threshold=0.5) == 1).all()


def test_label_ceiling_by_simulation_matches_the_exact_value():
    rng = np.random.default_rng(0)
    latent = rng.uniform(1.5, 8.5, 200)
    exact = ceilings.label_ceiling(latent, 1.3)
    ratings = np.clip(latent + 1.3 * rng.standard_normal((4000, 200)), 1, 9)  # (sims, trials)
    simulated = np.mean((ratings > 5) == (latent > 5))  # the Bayes rule: predict latent > 5
    assert abs(simulated - exact) < 0.005


@pytest.fixture(scope="module")
def no_noise(root):
    spec = _spec(root, "no_noise", replace(BASE, n_subjects=2, rating_noise_sd=0.0))
    return spec, ceilings.fold_ceilings(spec, replace(PROTOCOL, seeds=(0, 1)))


def test_without_rating_noise_the_label_ceiling_is_1(no_noise):
    _, table = no_noise
    assert len(table) == 2 * 2 * 5 * 2 and (table["label_ceiling"] == 1.0).all()


def test_with_ratings_independent_of_the_latent_the_label_ceiling_is_the_majority_rate(root):
    """A rating noise so large that every label is a coin flip whatever the latent."""
    spec = _spec(root, "coin_flips", replace(BASE, rating_noise_sd=1e4))
    table = ceilings.fold_ceilings(spec, PROTOCOL)
    np.testing.assert_allclose(table["label_ceiling"], 0.5, atol=1e-3)  # P(high) = 1/2 for every trial
    # ... the rate of the majority class of coin flips, which the folds' majority scores in expectation
    assert abs(table["majority_trial"].mean() - 0.5) < 0.08


# --- the modality oracles --------------------------------------------------------------------

def test_the_oracle_of_a_modality_without_emotion_effects_is_at_chance(root):
    spec = _spec(root, "eog_off", replace(BASE, **EOG_OFF))
    table = ceilings.fold_ceilings(spec, PROTOCOL)
    n = table["n_test_trials"].sum()  # test trials (one seed)
    assert abs(table["eog_ceiling"].mean() - 0.5) < 3 * 0.5 / np.sqrt(n)  # chance
    assert table["eeg_ceiling"].mean() > 0.65  # the EEG's parameters do carry the emotion


def test_ceilings_are_fractions_per_unit_and_ordered_sensibly(default_ceilings, root):
    _, table = default_ceilings
    assert list(table.columns[:9]) == ["task", "subject", "fold", "seed", "n_test_trials", "majority_trial",
                                       "label_ceiling", "eeg_ceiling", "eog_ceiling"]
    assert len(table) == 2 * 3 * 5  # tasks x subjects x folds (one seed)
    assert table[list(ceilings.CEILINGS)].apply(lambda c: c.between(0, 1)).all().all()
    truth = ceilings.load_ground_truth(root / "default")
    assert any(c.startswith("eog__eeg_path_") for c in ceilings.modality_columns(truth, "eog_ceiling"))
    joint = ceilings.modality_columns(truth, "eeg_eog_ceiling")  # the path's columns copy EEG ones: left out
    assert set(joint) == set(ceilings.modality_columns(truth, "eeg_ceiling")) | {
        c for c in ceilings.modality_columns(truth, "eog_ceiling") if not c.startswith("eog__eeg_path_")}
    means = table[list(ceilings.CEILINGS) + ["majority_trial"]].mean()
    assert means["label_ceiling"] > means["eeg_ceiling"] > means["majority_trial"] + 0.1
    assert means["eog_ceiling"] > means["majority_trial"] + 0.05


def test_the_ceilings_use_the_runs_own_folds(no_noise, tmp_path):
    spec, table = no_noise
    run_protocol(spec, replace(PROTOCOL, seeds=(0, 1)), tmp_path / "run", progress=False)
    results = load_results(tmp_path / "run")
    merged = results.merge(table, on=["task", "subject", "fold", "seed"], suffixes=("", "_c"))
    assert len(merged) == len(results) == len(table)
    np.testing.assert_allclose(merged["majority_trial"], merged["majority_trial_c"])
    assert (merged["n_trials"] == merged["n_test_trials"]).all()


# --- no ground truth, broken ground truth --------------------------------------------------

def test_real_or_custom_data_have_no_ceilings_in_one_line(tmp_path):
    for spec in (DataSpec(dataset="deap", data_dir=str(tmp_path)), DataSpec(dataset="custom", manifest="x.yaml"),
                 DataSpec(dataset="synthetic", data_dir=str(tmp_path / "missing"))):
        with pytest.raises(ceilings.NoGroundTruth) as err:
            ceilings.fold_ceilings(spec, PROTOCOL)
        assert len(str(err.value).splitlines()) == 1 and "ground truth" in str(err.value)
    assert not ceilings.has_ground_truth(tmp_path)


def test_a_missing_or_corrupt_ground_truth_is_one_line_naming_the_file(default_ceilings, root, tmp_path):
    with pytest.raises(ceilings.GroundTruthError, match="ground_truth.csv"):
        ceilings.load_ground_truth(tmp_path)
    folder = root / "default"
    good = (folder / syn.GROUND_TRUTH_FILE).read_text()
    try:
        for bad in ("subject,trial\ns01,0\n", good.replace(good.splitlines()[1].split(",")[2], "nan", 1)):
            (folder / syn.GROUND_TRUTH_FILE).write_text(bad)
            with pytest.raises(ceilings.GroundTruthError) as err:
                ceilings.load_ground_truth(folder)
            assert "ground_truth.csv" in str(err.value) and len(str(err.value).splitlines()) == 1
    finally:
        (folder / syn.GROUND_TRUTH_FILE).write_text(good)


def test_a_ground_truth_of_other_files_is_refused(root):
    spec = _spec(root, "swapped", replace(BASE, n_subjects=2, n_trials=10))
    other = root / "other"
    syn.write_dataset(other, replace(BASE, n_subjects=2, n_trials=10, seed=99), progress=False)
    (root / "swapped" / syn.GROUND_TRUTH_FILE).write_text((other / syn.GROUND_TRUTH_FILE).read_text())
    with pytest.raises(ceilings.GroundTruthError, match="ratings differ"):
        ceilings.fold_ceilings(spec, PROTOCOL)


# --- share of the gap -------------------------------------------------------------------------

def _toy(share: float, n_subjects: int = 8):
    """Results and ceilings where a method closes exactly ``share`` of every subject's gap."""
    rng = np.random.default_rng(1)
    rows, cells = [], []
    for s in range(n_subjects):
        majority, ceiling = 0.5, rng.uniform(0.65, 0.85)
        for fold in range(2):
            key = dict(task="valence", subject=f"s{s:02d}", fold=fold, seed=0)
            cells.append(dict(key, n_test_trials=8, majority_trial=majority, label_ceiling=0.9,
                              eeg_ceiling=ceiling, eog_ceiling=ceiling, eeg_eog_ceiling=ceiling))
            for method, acc in (("majority", majority), ("v3", majority + share * (ceiling - majority))):
                rows.append(dict(key, method=method, acc_trial=acc, majority_trial=majority))
    return pd.DataFrame(rows), pd.DataFrame(cells)


def test_gap_closed_is_the_share_of_the_attainable_gap():
    results, table = _toy(0.4)
    out = ceilings.gap_closed(results, table).set_index("method")
    assert out.loc["v3", "gap_closed"] == pytest.approx(0.4)
    assert out.loc["v3", "ci_low"] == pytest.approx(0.4) and out.loc["v3", "ci_high"] == pytest.approx(0.4)
    assert out.loc["majority", "gap_closed"] == pytest.approx(0.0)
    own = ceilings.gap_closed(results, table, ceiling="method").set_index("method")
    assert own.loc["v3", "ceiling"] == "eog_ceiling" and own.loc["majority", "ceiling"] == "label_ceiling"
    with pytest.raises(ValueError, match="ceiling"):
        ceilings.gap_closed(results, table, ceiling="nonsense")
    table.loc[0, "majority_trial"] = 0.25  # ceilings of other data
    with pytest.raises(ValueError, match="majority"):
        ceilings.gap_closed(results, table)


def test_ratio_interval_covers_the_ratio_and_opens_when_the_denominator_is_noise():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.1, 0.3, 12)
    a = 0.5 * b + 0.02 * rng.standard_normal(12)
    r = stats.ratio_interval(a, b)
    assert r["bounded"] and r["ci_low"] < 0.5 < r["ci_high"] and r["ratio"] == pytest.approx(a.mean() / b.mean())
    noise = stats.ratio_interval(a, 0.05 * rng.standard_normal(12))
    assert not noise["bounded"] and np.isnan(noise["ci_low"])
