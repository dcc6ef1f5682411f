"""The distillation sweep: grids and keys, resuming, refusing other settings, gains, figure, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from kdlib import cli, evaluate, plotting, sweep  # noqa: E402
from kdlib.data import synthetic  # noqa: E402
from kdlib.evaluate import ProtocolConfig  # noqa: E402
from kdlib.sweep import SweepGrid  # noqa: E402

TIMING = ["seconds"]
FAST = dict(tasks=("valence",), n_folds=2, seeds=(0,), model_preset="smoke", train_preset="smoke", epochs=1)
SMALL = replace(synthetic.SMOKE, n_subjects=2, n_trials=12)


def grid(methods=("majority",), noise=(1.0, 2.0), **kw) -> SweepGrid:
    return SweepGrid(synth=SMALL, knobs=(("rating_noise_sd", noise), ("n_trials", (12,))),
                     protocol=ProtocolConfig(methods=methods, **FAST), **kw)


def _stable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).reset_index(drop=True)


def test_points_are_keyed_by_their_knob_values():
    g = SweepGrid(synth=SMALL, knobs=(("rating_noise_sd", (0.5, 2.0)), ("n_trials", (12, 24))),
                  protocol=ProtocolConfig(**FAST))
    keys = [p.key for p in sweep.grid_points(g)]
    assert keys == ["rating_noise_sd=1.0__n_trials=12", "rating_noise_sd=0.5__n_trials=12",
                    "rating_noise_sd=1.0__n_trials=24", "rating_noise_sd=2.0__n_trials=12"]  # centre, round-robin
    assert sweep.grid_points(g)[2].config == replace(SMALL, n_trials=24)
    assert len(sweep.grid_points(replace(g, design="factorial"))) == 3 * 2
    assert sweep.point_key({"n_trials": 40.0, "rating_noise_sd": 1}) == "n_trials=40__rating_noise_sd=1.0"


@pytest.mark.parametrize(("knobs", "match"), [
    ((("no_such_knob", (1.0,)),), "no_such_knob.*not knobs of SynthConfig"),
    ((("n_trials", (12.5,)),), "n_trials takes whole numbers"),
    ((("n_trials", (1,)),), "n_trials=1.*at least 2"),
    ((("rating_noise_sd", (1.0, 1.0)),), "distinct values"),
])
def test_bad_grids_are_refused_before_anything_runs(tmp_path, knobs, match):
    with pytest.raises(ValueError, match=match):
        g = SweepGrid(synth=SMALL, knobs=knobs, protocol=ProtocolConfig(**FAST))
        sweep.run_sweep(g, out=tmp_path / "sweep", progress=False)
    assert not (tmp_path / "sweep").exists()


def test_sweep_resumes_after_an_interruption_and_gives_the_same_table(tmp_path, monkeypatch):
    g = grid(methods=("majority", "scratch"))
    clean, ceilings = sweep.run_sweep(g, out=tmp_path / "clean", progress=False)
    assert set(ceilings["point"]) == set(clean["point"]) and len(ceilings) == 2 * 2 * 2  # points x subjects x folds
    assert ceilings[["label_ceiling", "eog_ceiling"]].stack().between(0, 1).all()
    assert (ceilings.groupby("point")["synth_rating_noise_sd"].first() == [1.0, 2.0]).all()
    assert list(clean.columns[:3]) == ["point", "synth_rating_noise_sd", "synth_n_trials"]
    assert set(clean["point"]) == {"rating_noise_sd=1.0__n_trials=12", "rating_noise_sd=2.0__n_trials=12"}
    assert clean.groupby("point")["synth_rating_noise_sd"].nunique().eq(1).all()
    for key, part in clean.groupby("point"):  # each point read its own data set
        assert (tmp_path / "clean" / "data" / key / "s02.dat").is_file()
        stored = synthetic._read_config(tmp_path / "clean" / "data" / key)
        assert stored["rating_noise_sd"] == part["synth_rating_noise_sd"].iloc[0]
    real, calls = evaluate.run_protocol, []

    def dies_on_second_point(spec, config, out=None, **kw):
        calls.append(out)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, config, out=out, **kw)

    monkeypatch.setattr(evaluate, "run_protocol", dies_on_second_point)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(g, out=tmp_path / "resumed", progress=False)
    calls.clear()
    resumed, _ = sweep.run_sweep(g, out=tmp_path / "resumed", progress=False)
    assert [c.name for c in calls] == ["rating_noise_sd=2.0__n_trials=12"]  # the finished point is skipped
    pd.testing.assert_frame_equal(_stable(resumed), _stable(clean))
    pd.testing.assert_frame_equal(_stable(pd.read_csv(tmp_path / "resumed" / "sweep.csv")), _stable(clean))
    (tmp_path / "resumed" / "points" / "rating_noise_sd=1.0__n_trials=12" / "ceilings.csv").unlink()
    calls.clear()
    _, again = sweep.run_sweep(g, out=tmp_path / "resumed", progress=False)
    assert calls == [] and len(again) == len(ceilings)  # ceilings recomputed, nothing trained


def test_other_settings_are_refused_and_new_values_get_new_points(tmp_path):
    out = tmp_path / "sweep"
    first, _ = sweep.run_sweep(grid(), out=out, progress=False)
    with pytest.raises(ValueError, match="other settings.*protocol"):
        sweep.run_sweep(replace(grid(), protocol=ProtocolConfig(methods=("majority",), **{**FAST, "n_folds": 3})),
                        out=out, progress=False)
    with pytest.raises(ValueError, match="other settings.*synth"):
        sweep.run_sweep(replace(grid(), synth=replace(SMALL, latent_spread=2.0)), out=out, progress=False)
    more, _ = sweep.run_sweep(grid(noise=(1.0, 2.0, 3.0)), out=out, progress=False)
    assert set(more["point"]) == set(first["point"]) | {"rating_noise_sd=3.0__n_trials=12"}
    old = more[more["point"].isin(first["point"])]
    pd.testing.assert_frame_equal(_stable(old), _stable(first))  # finished points kept as they were
    fewer, _ = sweep.run_sweep(grid(noise=(1.0,)), out=out, progress=False)
    assert set(fewer["point"]) == {"rating_noise_sd=1.0__n_trials=12"}  # only the grid's points


def _fake_sweep():
    """Two points x 4 subjects x 2 folds of known accuracies, and their ceilings."""
    rows, ceilings = [], []
    gain = {"rating_noise_sd=1.0": 0.0, "rating_noise_sd=2.0": 0.1}
    for key, noise in (("rating_noise_sd=1.0", 1.0), ("rating_noise_sd=2.0", 2.0)):
        for s in range(4):
            for fold in range(2):
                base = 0.5 + 0.05 * s  # subjects differ, the pairing removes it
                accs = {"majority": 0.5, "teacher": base + 0.2, "scratch": base, "v1": base + gain[key],
                        "v2": base + gain[key] + 0.01 * (s % 2), "v3": base - 0.02}
                for m, acc in accs.items():
                    rows.append(dict(point=key, synth_rating_noise_sd=noise, task="valence", subject=f"s{s + 1:02d}",
                                     fold=fold, seed=0, method=m, acc_trial=acc, n_trials=8, majority_trial=0.5,
                                     share_kd=0.2 if m.startswith("v") else np.nan))
                ceilings.append(dict(point=key, synth_rating_noise_sd=noise, task="valence", subject=f"s{s + 1:02d}",
                                     fold=fold, seed=0, n_test_trials=8, majority_trial=0.5, label_ceiling=0.95,
                                     eeg_ceiling=0.9, eog_ceiling=base + 0.15))
    return pd.DataFrame(rows), pd.DataFrame(ceilings)


def test_gains_are_paired_by_subject_and_carry_the_ceiling():
    results, ceilings = _fake_sweep()
    gains = sweep.sweep_gains(results, ceilings).set_index(["point", "contrast"])
    assert gains.loc[("rating_noise_sd=1.0", "V1 − scratch"), "mean_diff"] == pytest.approx(0.0)
    v1 = gains.loc[("rating_noise_sd=2.0", "V1 − scratch")]
    assert v1["mean_diff"] == pytest.approx(0.1) and v1["ci_low"] == pytest.approx(0.1)  # same gain everywhere
    assert not v1["inside_noise"] and v1["family"] == "distillation" and v1["synth_rating_noise_sd"] == 2.0
    assert gains.loc[("rating_noise_sd=2.0", "V3 − scratch"), "mean_diff"] == pytest.approx(-0.02)
    assert gains.loc[("rating_noise_sd=1.0", "EOG ceiling − scratch"), "mean_diff"] == pytest.approx(0.15)
    assert gains.loc[("rating_noise_sd=1.0", "teacher − scratch"), "family"] == "reference"
    v2 = gains.loc[("rating_noise_sd=1.0", "V2 − scratch")]
    assert v2["mean_diff"] == pytest.approx(0.005) and v2["ci_low"] < 0 < v2["ci_high"] and v2["inside_noise"]
    summary = sweep.sweep_summary(results, ceilings).set_index(["point", "method"])
    assert summary.loc[("rating_noise_sd=1.0", "scratch"), "acc_trial_mean"] == pytest.approx(0.575)
    assert summary.loc[("rating_noise_sd=1.0", "eog_ceiling"), "acc_trial_mean"] == pytest.approx(0.725)
    assert summary.loc[("rating_noise_sd=2.0", "v1"), "share_kd"] == pytest.approx(0.2)
    assert summary.loc[("rating_noise_sd=1.0", "scratch"), "n_subjects"] == 4


def test_knob_slice_and_plot_sweep():
    results, ceilings = _fake_sweep()
    gains = sweep.sweep_gains(results, ceilings)
    record = {"centre": {"rating_noise_sd": 1.0}}
    line = sweep.knob_slice(gains, record, "rating_noise_sd")
    assert len(line) == len(gains) and line["synth_rating_noise_sd"].is_monotonic_increasing
    with pytest.raises(ValueError, match="not a knob"):
        sweep.knob_slice(gains, record, "n_trials")
    ax = plotting.plot_sweep(line, "synth_rating_noise_sd", label="rating noise")
    assert ax.get_xlabel() == "rating noise"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["V1 − scratch", "V2 − scratch", "V3 − scratch", "teacher − scratch", "EOG ceiling − scratch"]
    v1 = next(ln for ln in ax.get_lines() if ln.get_label() == "V1 − scratch")
    np.testing.assert_allclose(v1.get_ydata(), [0.0, 10.0])  # percentage points
    plt.close(ax.figure)


def test_report_of_a_finished_sweep(tmp_path):
    results, ceilings = _fake_sweep()
    g = SweepGrid(synth=SMALL, knobs=(("rating_noise_sd", (1.0, 2.0)),), protocol=ProtocolConfig(**FAST), smoke=True)
    out = tmp_path / "sweep"
    out.mkdir()
    results.to_csv(out / "sweep.csv", index=False)
    ceilings.to_csv(out / "ceilings.csv", index=False)
    (out / "sweep.json").write_text(json.dumps(sweep.sweep_record(g)))
    written = sweep.write_sweep_report(out)
    assert {p.name for p in written} == {"summary.csv", "gains.csv", "summary.md", "gain_valence_rating_noise_sd.png"}
    text = (out / "summary.md").read_text()
    assert text.startswith(f"**{plotting.SMOKE_NOTE}**") and "SYNTHETIC DATA" in text
    assert "## valence: rating_noise_sd" in text and "+10.0 [+10.0, +10.0]" in text  # V1 at noise 2
    assert "EOG ceiling − scratch (pp)" in text
    loaded, _, record = sweep.load_sweep(out)
    assert record["centre"] == {"rating_noise_sd": 1.0} and len(loaded) == len(results)
    with pytest.raises(FileNotFoundError, match="not a finished sweep"):
        sweep.load_sweep(tmp_path)


def test_cli_sweep(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sweep.SWEEP_PRESETS, "smoke", grid())
    out = tmp_path / "sweep"
    code = cli.main(["sweep", "--grid", "smoke", "--out", str(out), "--quiet", "--no-report"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "2 points" in stdout and (out / "sweep.csv").is_file() and not (out / "summary.md").exists()
    (out / "sweep.json").write_text("{broken")
    assert cli.main(["sweep", "--grid", "smoke", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "sweep.json" in err and "Traceback" not in err
    assert cli.main(["sweep", "--grid", "nope"]) == 2


def test_diagnosis_table_puts_the_teacher_ceilings_and_loss_shares_beside_the_gains():
    results, ceilings = _fake_sweep()
    summary, gains = sweep.sweep_summary(results, ceilings), sweep.sweep_gains(results, ceilings)
    why = sweep.diagnosis_table(summary, gains, "valence").set_index("point")
    noisy = why.loc["rating_noise_sd=2.0"]
    assert noisy["gain_v1"] == pytest.approx(10.0) and noisy["teacher_gap"] == pytest.approx(20.0)
    assert noisy["attainable"] == pytest.approx(15.0) and noisy["eog_ceiling"] == pytest.approx(72.5)
    assert noisy["label_ceiling"] == pytest.approx(95.0) and noisy["share_kd_v1"] == pytest.approx(0.2)
    assert noisy["synth_rating_noise_sd"] == 2.0
    record = {"centre": {"rating_noise_sd": 1.0}}
    table = sweep.knob_table(summary, gains, record, "rating_noise_sd", "valence")
    assert list(table["rating_noise_sd"]) == [1.0, 2.0]
    assert table.loc[1, "V1 − scratch (pp)"] == "+10.0 [+10.0, +10.0]"
    assert table.loc[0, "V2 − scratch (pp)"].endswith("(noise)") and table.loc[0, "scratch (%)"].startswith("57.5 [")


def test_gain_lines_and_intervals_read_as_text():
    results, ceilings = _fake_sweep()
    lines = sweep.gain_lines(sweep.sweep_gains(results, ceilings), {"centre": {"rating_noise_sd": 1.0},
                                                                    "knobs": ["rating_noise_sd"]}, "valence")
    assert lines[1].startswith("rating_noise_sd = 2: V1 +10.0 [+10.0, +10.0]  V2 ") and "EOG ceiling +15.0" in lines[1]
    assert sweep.format_interval(-1e-6, -2e-6, 0.0, sign=True) == "+0.0 [+0.0, +0.0]"  # no negative zero
    assert sweep.format_interval(0.5, np.nan, np.nan) == "50.0" and sweep.format_interval(np.nan, 0, 1) == ""


def test_the_recorded_sweep_is_the_full_grid():
    recorded = Path(__file__).parents[1] / "benchmarks" / "results" / "sweep_distill"
    record = json.loads((recorded / "sweep.json").read_text())
    mine = json.loads(json.dumps(sweep.sweep_record(sweep.SWEEP_PRESETS["full"])))
    for part in ("synth", "knobs", "centre", "design", "smoke"):  # a changed generator default shows here
        assert record[part] == mine[part], f"{part}: the full grid no longer is the recorded sweep; re-record it"
    assert {k: v for k, v in mine["protocol"].items() if k in record["protocol"]} == record["protocol"]
    points = set(pd.read_csv(recorded / "sweep.csv")["point"])
    assert points == {p.key for p in sweep.grid_points(sweep.SWEEP_PRESETS["full"])}
