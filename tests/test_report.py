"""kdlib.report on a hand-made run folder: intervals, contrasts, chance band, smoke banner, seeds."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from kdlib import plotting, report, stats  # noqa: E402
from kdlib.evaluate import METHODS  # noqa: E402

SKILL = {"majority": 0.0, "eeg_only": 0.05, "eog_only": 0.08, "late_fusion": 0.1, "teacher": 0.15,
         "scratch": 0.08, "v1": 0.1, "v2": 0.1, "v3": 0.12}


def fold_rows(rng, task, subject, fold, seed, n=8, methods=METHODS) -> list[dict]:
    y = rng.integers(0, 2, n)
    rows = []
    for m in methods:
        pred = np.where(rng.random(n) < 0.5 + SKILL[m], y, 1 - y)
        tn, fp = int(np.sum((y == 0) & (pred == 0))), int(np.sum((y == 0) & (pred == 1)))
        fn, tp = int(np.sum((y == 1) & (pred == 0))), int(np.sum((y == 1) & (pred == 1)))
        acc = (tn + tp) / n
        f1 = float(stats.macro_f1_from_counts(tn, fp, fn, tp))
        rows.append(dict(task=task, subject=subject, fold=fold, seed=seed, method=m, acc_window=acc, f1_window=f1,
                         acc_trial=acc, f1_trial=f1, majority_window=np.mean(y == 0), majority_trial=np.mean(y == 0),
                         n_windows=4 * n, n_trials=n, trial_tn=tn, trial_fp=fp, trial_fn=fn, trial_tp=tp,
                         seconds=0.1, best_epoch=1))
    return rows


def make_run(folder, seeds=(0, 1), n_subjects=6, n_folds=3, smoke=False, seed_key="seeds", with_seed=True,
             methods=METHODS):
    """A run folder as run_protocol leaves it: folds/*.csv and config.json."""
    rng = np.random.default_rng(0)
    (folder / "folds").mkdir(parents=True)
    for task in ("valence", "arousal"):
        for s in range(n_subjects):
            for seed in seeds:
                for fold in range(n_folds):
                    table = pd.DataFrame(fold_rows(rng, task, f"s{s + 1:02d}", fold, seed, methods=methods))
                    if not with_seed:
                        table = table.drop(columns="seed")
                    table.to_csv(folder / "folds" / f"{task}__s{s + 1:02d}__seed{seed}__fold{fold}.csv", index=False)
    preset = "smoke" if smoke else "default"
    proto = dict(protocol="trial_kfold", n_folds=n_folds, val_size=0.2, tasks=["valence", "arousal"],
                 methods=list(methods), subjects=[], model_preset=preset, train_preset=preset, epochs=None,
                 shuffle_labels=False, save_checkpoints=False)
    proto[seed_key] = list(seeds) if seed_key == "seeds" else seeds[0]
    # a data folder that does not exist: hand-made results have no data, hence no ground truth
    config = dict(protocol=proto, data=dict(dataset="synthetic", data_dir=str(folder / "no_data"), manifest="",
                                            cache_dir="", prep={}))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run") / "run")
    return run, report.write_report(run)


def test_report_writes_every_table_and_figure(written):
    run, files = written
    names = {p.name for p in files}
    assert {"summary.md", "summary.csv", "per_subject.csv", "per_seed.csv", "ablation.csv", "contrasts.csv",
            "tests.csv", "chance.csv", "ablation_valence.png", "ablation_arousal.png", "contrasts_valence.png",
            "contrasts_arousal.png"} <= names
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert all(p.parent == run / "report" for p in files)


def test_report_summary_has_intervals_seed_spread_and_pooled_f1(written):
    run, _ = written
    summary = pd.read_csv(run / "report" / "summary.csv")
    for col in ("acc_trial_ci_low", "acc_trial_ci_high", "acc_trial_seed_sd", "f1_trial_pooled_mean",
                "f1_trial_pooled_ci_low", "n_seeds"):
        assert col in summary and summary[col].notna().all(), col
    assert (summary["n_seeds"] == 2).all() and (summary["n_subjects"] == 6).all()
    assert (summary["acc_trial_ci_low"] < summary["acc_trial_mean"]).all()
    ablation = pd.read_csv(run / "report" / "ablation.csv")
    assert {"accuracy (trial, %) [95 % CI]", "seed-to-seed SD", "F1 (trial, pooled, %)",
            "F1 (trial, fold mean, %)", "seeds"} <= set(ablation.columns)
    assert ablation["accuracy (trial, %) [95 % CI]"].str.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]").all()


def test_report_contrasts_csv_and_markdown(written):
    run, _ = written
    contrasts = pd.read_csv(run / "report" / "contrasts.csv")
    assert set(contrasts["metric"]) == {"acc_trial", "f1_trial", "f1_trial_pooled"}
    assert len(contrasts) == 2 * 3 * len(stats.DEFAULT_CONTRASTS)
    for col in ("mean_diff", "ci_low", "ci_high", "p_t", "p_wilcoxon", "cohen_dz", "p_holm", "seed_sd", "inside_noise"):
        assert col in contrasts, col
    md = (run / "report" / "summary.md").read_text()
    assert "## Paired contrasts" in md and "V3 − V2" in md and "teacher − EOG-only" in md
    assert "inside the noise" in md
    assert "Chance for a mean over subjects" in md and "exact binomial" in md
    assert "seeds 0, 1" in md and "SYNTHETIC DATA" in md
    assert plotting.SMOKE_NOTE not in md  # default presets: no smoke banner


def test_report_chance_table_is_for_a_mean_over_subjects(written):
    run, _ = written
    chance = pd.read_csv(run / "report" / "chance.csv").set_index("task")
    lo, hi = stats.chance_band([24] * 6)  # 3 folds x 8 trials per seed, 6 subjects
    assert chance.loc["valence", ["chance_low", "chance_high"]].tolist() == pytest.approx([lo, hi])
    assert chance.loc["valence", "single_low"] < lo


def test_smoke_run_carries_the_banner_on_summary_and_figures(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run", seeds=(0,), n_subjects=3, n_folds=2, smoke=True, seed_key="seed")
    stamped = []
    original = plotting.mark_smoke
    monkeypatch.setattr(plotting, "mark_smoke", lambda fig, smoke=True: stamped.append(
        (smoke, any(t.get_text() == plotting.SMOKE_NOTE for t in original(fig, smoke).texts))) or fig)
    files = report.write_report(run)
    md = (run / "report" / "summary.md").read_text()
    assert md.splitlines()[0] == f"**{plotting.SMOKE_NOTE}**"
    figures = [p for p in files if p.suffix == ".png"]
    assert len(figures) == 4 and stamped == [(True, True)] * 4  # every figure got the banner
    assert "; seed 0\n" in md  # the old single 'seed' key still works
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert summary["acc_trial_seed_sd"].isna().all()  # one seed: no seed spread


def test_run_without_seed_column(tmp_path):
    run = make_run(tmp_path / "run", seeds=(0,), n_subjects=3, n_folds=2, with_seed=False, seed_key="seed")
    report.write_report(run)
    per_subject = pd.read_csv(run / "report" / "per_subject.csv")
    assert (per_subject["n_seeds"] == 1).all() and len(per_subject) == 2 * 3 * len(METHODS)


def test_run_with_two_methods_and_two_subjects_has_no_contrasts(tmp_path):
    run = make_run(tmp_path / "run", seeds=(0,), n_subjects=2, n_folds=2, methods=("majority", "eog_only"))
    names = {p.name for p in report.write_report(run)}
    assert "contrasts_valence.png" not in names and "ablation_valence.png" in names
    md = (run / "report" / "summary.md").read_text()
    assert "EOG-only net" in md and "majority class" in md and "## Paired contrasts" not in md
    assert "Chance for a mean over subjects" in md


def test_report_says_which_planned_seeds_are_missing(tmp_path):
    run = make_run(tmp_path / "run", seeds=(0, 1), n_subjects=3, n_folds=2)
    config = json.loads((run / "config.json").read_text())
    config["protocol"]["seeds"] = [0, 1, 2]  # seed 2 never finished
    (run / "config.json").write_text(json.dumps(config))
    report.write_report(run)
    assert "; seeds 0, 1 (of 0, 1, 2 planned)\n" in (run / "report" / "summary.md").read_text()


def test_run_seeds_and_is_smoke():
    assert report.run_seeds({"protocol": {"seeds": [0, 1, 2]}}) == [0, 1, 2]
    assert report.run_seeds({"protocol": {"seed": 4}}) == [4]
    assert report.run_seeds({"protocol": {}}) == [0]
    assert report.is_smoke({"protocol": {"model_preset": "default", "train_preset": "smoke"}})
    assert not report.is_smoke({"protocol": {"model_preset": "paper", "train_preset": "default"}})


def test_step_table_reports_the_quiz_the_loss_shares_and_the_teachers_movement():
    from kdlib.report import step_table
    rows = []
    for method, extra in (("majority", {}), ("teacher", {}), ("v2", dict(share_ce=0.5, share_kd=0.2, share_feat=0.3)),
                          ("v3", dict(share_ce=0.4, share_kd=0.2, share_feat=0.4, feedback_steps=6, teacher_dp=0.02,
                                      teacher_flips=0.05))):
        for fold in (0, 1):
            rows.append(dict(task="valence", subject="s01", fold=fold, seed=0, method=method, n_teach_trials=21,
                             n_quiz_trials=5 + fold, n_val_trials=6, best_epoch=3 + fold, **extra))
    table = step_table(pd.DataFrame(rows)).set_index("method")
    assert list(table.index) == ["teacher", "v2", "v3"]  # majority has nothing to report
    assert table.loc["v3", "n_quiz_trials"] == 5.5 and table.loc["v3", "teacher_dp"] == 0.02
    assert np.isnan(table.loc["v2", "feedback_steps"]) and table.loc["v2", "share_feat"] == 0.3
    assert step_table(pd.DataFrame([dict(task="valence", method="v2", acc_trial=0.5)])).empty


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"protocol": 3}'])
def test_run_info_names_a_corrupt_config_json(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match="config.json"):
        report.run_info(tmp_path)


def test_a_run_without_ground_truth_says_it_has_no_ceilings(written):
    run, _ = written
    text = (run / "report" / "summary.md").read_text()
    assert "## Ceilings" in text and "No ceilings:" in text and "data folder not found" in text
    assert "no ground truth" in text
    assert "gap closed [95 % CI]" not in pd.read_csv(run / "report" / "ablation.csv").columns


def test_a_synthetic_run_shows_its_ceilings_beside_every_result(tmp_path):
    from dataclasses import replace

    from kdlib.data import synthetic as syn
    from kdlib.evaluate import DataSpec, ProtocolConfig, run_protocol

    syn.write_dataset(tmp_path / "data", replace(syn.SMOKE, n_subjects=2), progress=False)
    spec = DataSpec(dataset="synthetic", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    run_protocol(spec, ProtocolConfig(methods=("majority",), tasks=("valence",)), tmp_path / "run", progress=False)
    report.write_report(tmp_path / "run")
    out = tmp_path / "run" / "report"
    table = pd.read_csv(out / "ablation.csv")
    assert table["ceiling (%)"].str.startswith("label ").all()  # the majority class: bounded by the labels
    assert table["gap closed [95 % CI]"].str.startswith("0 %").all()  # the floor closes none of the gap
    ceilings = pd.read_csv(out / "ceilings.csv")
    assert len(ceilings) == 2 * 5 and ceilings["label_ceiling"].between(0.5, 1).all()
    text = (out / "summary.md").read_text()
    assert "## Ceilings (the generator's ground truth)" in text and "EOG ceiling (%)" in text


def test_mark_ceilings_draws_one_labelled_line_per_ceiling():
    import matplotlib.pyplot as plt

    summary = pd.DataFrame([dict(task="valence", label_ceiling_mean=0.9, eeg_ceiling_mean=0.7, eog_ceiling_mean=np.nan),
                            dict(task="arousal", label_ceiling_mean=0.8, eeg_ceiling_mean=0.6, eog_ceiling_mean=0.65)])
    fig, ax = plt.subplots()
    plotting.mark_ceilings(ax, summary, "arousal")
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    assert lines == {"label ceiling 80 %": 0.8, "EEG ceiling 60 %": 0.6, "EOG ceiling 65 %": 0.65}
    fig2, ax2 = plt.subplots()
    plotting.mark_ceilings(ax2, summary, "valence")  # a missing ceiling is not drawn
    assert len(ax2.get_lines()) == 2
    plt.close(fig)
    plt.close(fig2)
