"""kdlib.stats agrees with scipy and sklearn on hand-made tables, and averages in the right order."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score

from kdlib import stats


def counts_row(y_true, y_pred) -> dict:
    """Confusion counts and trial metrics of one fold, as kdlib.evaluate.scores writes them."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tn, fp = np.sum((y_true == 0) & (y_pred == 0)), np.sum((y_true == 0) & (y_pred == 1))
    fn, tp = np.sum((y_true == 1) & (y_pred == 0)), np.sum((y_true == 1) & (y_pred == 1))
    acc = float(np.mean(y_true == y_pred))
    f1 = f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0)
    return dict(acc_trial=acc, f1_trial=f1, acc_window=acc, f1_window=f1, trial_tn=tn, trial_fp=fp,
                trial_fn=fn, trial_tp=tp, n_trials=len(y_true), majority_trial=float(np.mean(y_true == 0)),
                majority_window=float(np.mean(y_true == 0)))


def random_results(n_subjects=7, n_folds=3, seeds=(0, 1), methods=("majority", "scratch", "v1", "v3"),
                   n_per_fold=8, shift=None, rng_seed=0) -> pd.DataFrame:
    """Fold rows with real confusion counts: each method is right with its own probability."""
    rng = np.random.default_rng(rng_seed)
    shift = shift or {"majority": 0.0, "scratch": 0.1, "v1": 0.15, "v3": 0.25}
    rows = []
    for s in range(n_subjects):
        skill = rng.uniform(-0.05, 0.05)
        for seed in seeds:
            for fold in range(n_folds):
                y = rng.integers(0, 2, n_per_fold)
                for m in methods:
                    right = rng.random(n_per_fold) < 0.5 + shift[m] + skill
                    rows.append(dict(task="valence", subject=f"s{s:02d}", fold=fold, seed=seed, method=m,
                                     **counts_row(y, np.where(right, y, 1 - y))))
    return pd.DataFrame(rows)


def no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# --- intervals -------------------------------------------------------------------------------

def test_t_interval_half_width_is_t_times_sd_over_root_n():
    x = np.array([0.52, 0.61, 0.58, 0.49, 0.70, 0.55])
    mean, low, high = stats.t_interval(x)
    half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert mean == pytest.approx(x.mean()) and (high - low) / 2 == pytest.approx(half)
    assert (low, high) == pytest.approx(sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x)))
    _, low90, high90 = stats.t_interval(x, level=0.9)
    assert low < low90 < high90 < high
    assert no_warnings(stats.t_interval, [0.5])[0] == 0.5 and np.isnan(stats.t_interval([0.5])[1])
    assert np.isnan(stats.t_interval([])[0])


def test_pooled_f1_equals_sklearn_on_the_expanded_labels():
    rng = np.random.default_rng(1)
    folds = [(rng.integers(0, 2, 8), rng.integers(0, 2, 8)) for _ in range(5)]
    rows = pd.DataFrame([counts_row(t, p) for t, p in folds])
    pooled = stats.macro_f1_from_counts(*(rows[c].sum() for c in stats.COUNTS))
    y_true = np.concatenate([t for t, _ in folds])
    y_pred = np.concatenate([p for _, p in folds])
    assert pooled == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert pooled != pytest.approx(rows["f1_trial"].mean())  # pooling is not the mean of fold F1
    # one-class predictions: the absent class scores 0, as sklearn's zero_division=0
    assert stats.macro_f1_from_counts(0, 0, 3, 5) == pytest.approx(
        f1_score([1] * 8, [0] * 3 + [1] * 5, average="macro", labels=[0, 1], zero_division=0))


def test_subject_pooled_f1_pools_folds_and_seeds():
    results = random_results(n_subjects=2, methods=("scratch",), shift={"scratch": 0.1})
    per_subject, per_seed = stats.subject_means(results)
    one = results[results["subject"] == "s01"]
    expanded_true, expanded_pred = [], []
    for _, r in one.iterrows():  # rebuild the trials from the counts
        for (t, p), c in (((0, 0), "trial_tn"), ((0, 1), "trial_fp"), ((1, 0), "trial_fn"), ((1, 1), "trial_tp")):
            expanded_true += [t] * r[c]
            expanded_pred += [p] * r[c]
    row = per_subject.set_index("subject").loc["s01"]
    assert row["f1_trial_pooled"] == pytest.approx(f1_score(expanded_true, expanded_pred, average="macro"))
    assert row["n_seeds"] == 2 and row["n_trials"] == 24
    assert set(per_seed["n_folds"]) == {3} and len(per_seed) == 4


# --- order of aggregation --------------------------------------------------------------------

def test_folds_are_averaged_within_a_seed_then_seeds_then_subjects():
    # s00: seed 0 has two folds (0.4, 0.6), seed 1 only one (0.9): mean of seeds 0.7, of rows 0.633
    rows = [("s00", 0, 0, 0.4), ("s00", 0, 1, 0.6), ("s00", 1, 0, 0.9),
            ("s01", 0, 0, 0.5), ("s01", 0, 1, 0.5), ("s01", 1, 0, 0.5), ("s01", 1, 1, 0.5)]
    results = pd.DataFrame([dict(task="valence", method="v3", subject=s, seed=seed, fold=f, acc_trial=a)
                            for s, seed, f, a in rows])
    per_subject, per_seed = stats.subject_means(results, ("acc_trial",))
    assert per_subject.set_index("subject")["acc_trial"].to_dict() == pytest.approx({"s00": 0.7, "s01": 0.5})
    summary = stats.method_summary(results, ("acc_trial",)).iloc[0]
    assert summary["acc_trial_mean"] == pytest.approx(0.6)  # not the row mean 0.557, not 0.567
    assert summary["n_subjects"] == 2 and summary["n_seeds"] == 2  # subjects are the units, not seeds
    assert summary["acc_trial_sd"] == pytest.approx(np.std([0.7, 0.5], ddof=1))
    # seed spread: seed means over subjects are 0.5 and 0.7
    assert summary["acc_trial_seed_sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_a_table_without_seed_is_one_seed():
    results = random_results(seeds=(0,)).drop(columns="seed")
    summary = no_warnings(stats.method_summary, results)
    assert (summary["n_seeds"] == 1).all() and summary["acc_trial_seed_sd"].isna().all()
    assert summary.set_index("method").loc["v3", "n_subjects"] == 7
    contrasts = no_warnings(stats.paired_contrasts, results)
    assert contrasts["seed_sd"].isna().all() and (contrasts["n_seeds"] == 1).all()
    seeded = stats.method_summary(results.assign(seed=0))
    pd.testing.assert_frame_equal(summary, seeded)


def test_method_summary_intervals_are_over_subject_means():
    results = random_results()
    per_subject, _ = stats.subject_means(results)
    summary = stats.method_summary(results).set_index("method")
    for m in ("acc_trial", "f1_trial", "f1_trial_pooled"):
        x = per_subject.loc[per_subject["method"] == "v1", m].to_numpy()
        mean, low, high = stats.t_interval(x)
        assert summary.loc["v1", [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high"]].tolist() == pytest.approx(
            [mean, low, high])
    assert list(summary.index) == ["majority", "scratch", "v1", "v3"]
    assert (summary["acc_trial_seed_sd"] > 0).all()


# --- paired contrasts ------------------------------------------------------------------------

def test_paired_difference_agrees_with_scipy():
    a = np.array([0.60, 0.72, 0.55, 0.66, 0.70, 0.58, 0.63])
    b = np.array([0.55, 0.60, 0.56, 0.58, 0.61, 0.50, 0.60])
    out = stats.paired_difference(a, b)
    t, p = sps.ttest_rel(a, b)
    w, pw = sps.wilcoxon(a - b)
    d = a - b
    assert out["t"] == pytest.approx(t) and out["p_t"] == pytest.approx(p)
    assert out["wilcoxon_W"] == pytest.approx(w) and out["p_wilcoxon"] == pytest.approx(pw)
    assert out["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    half = sps.t.ppf(0.975, 6) * d.std(ddof=1) / math.sqrt(7)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert out["n_subjects"] == 7 and out["mean_a"] == pytest.approx(a.mean())


def test_paired_difference_without_variation_is_nan_and_silent():
    out = no_warnings(stats.paired_difference, [0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert out["mean_diff"] == pytest.approx(0.1) and np.isnan([out["t"], out["p_t"], out["cohen_dz"]]).all()
    assert np.isnan(out["p_wilcoxon"])  # fewer than 6 subjects
    same = no_warnings(stats.paired_difference, [0.5] * 8, [0.5] * 8)
    assert same["mean_diff"] == 0 and np.isnan(same["p_wilcoxon"]) and (same["ci_low"], same["ci_high"]) == (0, 0)
    one = no_warnings(stats.paired_difference, [0.6, np.nan], [0.5, 0.4])
    assert one["n_subjects"] == 1 and np.isnan(one["ci_low"])


def test_holm_on_a_hand_example():
    # sorted: 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08 -> running max 0.09), 0.2 (x1)
    adjusted = stats.holm([0.04, 0.01, 0.2, np.nan, 0.03])
    np.testing.assert_allclose(adjusted, [0.09, 0.04, 0.2, np.nan, 0.09])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert stats.holm([]).shape == (0,)


def test_paired_contrasts_table():
    results = random_results(n_subjects=8, methods=("majority", "scratch", "v1", "v2", "v3", "teacher", "eog_only"),
                             shift={"majority": 0.0, "scratch": 0.1, "v1": 0.12, "v2": 0.12, "v3": 0.3,
                                    "teacher": 0.3, "eog_only": 0.1})
    table = no_warnings(stats.paired_contrasts, results)
    assert len(table) == 2 * len(stats.DEFAULT_CONTRASTS)  # acc_trial and f1_trial
    acc = table[table["metric"] == "acc_trial"].set_index("contrast")
    assert list(acc.index) == ["V1 − scratch", "V2 − V1", "V3 − V2", "V3 − scratch", "teacher − EOG-only",
                               "V3 − majority"]
    per_subject, per_seed = stats.subject_means(results)
    wide = per_subject.pivot(index="subject", columns="method", values="acc_trial")
    t, p = sps.ttest_rel(wide["v3"], wide["v2"])
    assert acc.loc["V3 − V2", "t"] == pytest.approx(t) and acc.loc["V3 − V2", "p_t"] == pytest.approx(p)
    np.testing.assert_allclose(acc["p_holm"], stats.holm(acc["p_t"]))
    assert (acc["p_holm"] >= acc["p_t"]).all()
    assert not acc.loc["V3 − majority", "inside_noise"] and acc.loc["V3 − majority", "ci_low"] > 0
    assert acc["inside_noise"].tolist() == [not (lo > 0 or hi < 0) for lo, hi in zip(acc["ci_low"], acc["ci_high"])]
    seed_means = per_seed.pivot_table(index="seed", columns="method", values="acc_trial")  # over subjects
    assert acc.loc["V3 − V2", "seed_sd"] == pytest.approx((seed_means["v3"] - seed_means["v2"]).std(ddof=1))
    pooled = table[table["metric"] == "f1_trial"]
    assert pooled["mean_diff"].notna().all()


def test_paired_contrasts_skip_missing_methods_and_accept_pooled_f1():
    table = stats.paired_contrasts(random_results(), metrics=("f1_trial_pooled",))
    assert set(table["contrast"]) == {"V1 − scratch", "V3 − scratch", "V3 − majority"}
    assert (table["metric"] == "f1_trial_pooled").all()


# --- chance ----------------------------------------------------------------------------------

def test_chance_band_with_equal_trials_is_one_binomial():
    lo, hi = stats.chance_band([40] * 8)
    blo, bhi = sps.binom.interval(0.95, 320, 0.5)
    assert (lo, hi) == (blo / 320, bhi / 320)
    single = sps.binom.interval(0.95, 40, 0.5)
    assert hi - lo < (single[1] - single[0]) / 40  # a mean over subjects is much tighter


def test_chance_band_convolution_reproduces_the_binomial():
    # p nudged by 1e-13 in one subject: the exact-convolution path, on a case with a known answer
    for n, p, s in ((40, 0.5, 3), (37, 0.6, 20), (10, 0.3, 5)):
        lo, hi = stats.chance_band([n] * s, [p] + [p + 1e-13] * (s - 1))
        blo, bhi = sps.binom.interval(0.95, s * n, p)
        assert (lo, hi) == pytest.approx((blo / (s * n), bhi / (s * n)), abs=1e-12)


def brute_force_band(n, p, level=0.95, draws=400_000, seed=123):
    rng = np.random.default_rng(seed)
    means = (rng.binomial(n, p, size=(draws, len(n))) / np.asarray(n)).mean(axis=1)
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2])


@pytest.mark.parametrize("n, p", [([40, 32, 24, 40, 36], 0.5), ([40, 40, 30], [0.5, 0.6, 0.55]), ([10] * 3, 0.7)])
def test_chance_band_matches_a_brute_force_simulation(n, p):
    lo, hi = stats.chance_band(n, p)
    sim_lo, sim_hi = brute_force_band(np.array(n), p)
    step = 1 / (len(n) * math.lcm(*n))  # the grid of possible means
    assert lo == pytest.approx(sim_lo, abs=2 * step + 1e-3) and hi == pytest.approx(sim_hi, abs=2 * step + 1e-3)


def test_chance_band_exact_and_monte_carlo_agree():
    n = [40, 32, 24]
    exact = stats.chance_band(n)
    mc = stats.chance_band(n, max_grid=0)  # grid not allowed: Monte Carlo with a fixed seed
    assert mc == stats.chance_band(n, max_grid=0)  # reproducible
    assert mc == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        stats.chance_band([40, 0])


def test_chance_table_per_task():
    results = random_results(n_subjects=5, seeds=(0, 1))
    table = stats.chance_table(results).set_index("task")
    row = table.loc["valence"]
    assert row["n_subjects"] == 5 and row["n_trials_min"] == row["n_trials_max"] == 24  # per seed, not 48
    assert (row["chance_low"], row["chance_high"]) == stats.chance_band([24] * 5)
    assert row["band_method"] == "exact binomial"
    assert row["single_low"] < row["chance_low"] < 0.5 < row["chance_high"] < row["single_high"]
    per_subject, _ = stats.subject_means(results[results["method"] == "majority"], ())
    p = per_subject["majority_trial"].to_numpy()
    assert row["majority_mean"] == pytest.approx(p.mean())
    assert (row["majority_low"], row["majority_high"]) == stats.chance_band([24] * 5, p)
