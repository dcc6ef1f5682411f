"""The evaluation protocol: fold hygiene, chance on shuffled labels, resume, Dask, statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from kdlib import evaluate
from kdlib.data import synthetic
from kdlib.evaluate import DataSpec, ProtocolConfig, run_protocol

FAST = dict(n_folds=2, model_preset="smoke", train_preset="smoke", epochs=1)
TIMING = ["seconds"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> DataSpec:
    """Two synthetic subjects with 12 trials each, and a cache of their own."""
    root = tmp_path_factory.mktemp("evaluate")
    synthetic.write_dataset(root / "synthetic", synthetic.SynthConfig(n_subjects=2, n_trials=12), progress=False)
    return DataSpec(dataset="synthetic", data_dir=str(root / "synthetic"), cache_dir=str(root / "cache"))


def _stable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).reset_index(drop=True)


def test_scores_window_and_trial_level():
    prob = np.array([[0.9, 0.1], [0.4, 0.6], [0.45, 0.55], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2]])
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 1, 1])  # two trials of three windows
    s = evaluate.scores(prob, y, groups, train_majority=1)
    assert s["acc_window"] == pytest.approx(3 / 6)
    assert s["acc_trial"] == 1.0  # trial 0: mean p(high) 0.42 -> low; trial 1: 0.57 -> high
    assert s["majority_trial"] == 0.5 and s["n_trials"] == 2 and s["n_windows"] == 6
    assert (s["trial_tn"], s["trial_fp"], s["trial_fn"], s["trial_tp"]) == (1, 0, 0, 1)


def test_chance_interval():
    lo, hi = evaluate.chance_interval(40)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.3, abs=0.05)
    assert evaluate.chance_interval(400)[1] < hi


def test_shuffled_labels_stay_trial_consistent(spec):
    ws = spec.load()
    shuffled = evaluate.shuffle_trial_labels(ws, seed=1)
    for key in np.unique(ws.groups):
        rows = shuffled.ratings[ws.groups == key]
        assert (rows == rows[0]).all()
    assert not np.array_equal(shuffled.ratings, ws.ratings)
    assert sorted(map(tuple, shuffled.trial_table()[["valence"]].to_numpy())) == \
        sorted(map(tuple, ws.trial_table()[["valence"]].to_numpy()))  # same ratings, new trials


def test_teacher_retrained_in_every_fold_and_test_never_seen(spec, tmp_path, monkeypatch):
    import kdlib.models
    import kdlib.train

    built, fitted, predicted = [], [], []
    build, fit, predict = kdlib.models.build_model, kdlib.train.fit, kdlib.train.predict

    def spy_build(name, config):
        model = build(name, config)
        built.append((name, id(model), model))
        return model

    def spy_fit(model, train, val, task, config, **kw):
        fitted.append((set(zip(train.subject, train.trial)), set(zip(val.subject, val.trial))))
        return fit(model, train, val, task, config, **kw)

    def spy_predict(model, ws, *a, **kw):
        predicted.append(set(zip(ws.subject, ws.trial)))
        return predict(model, ws, *a, **kw)

    monkeypatch.setattr(kdlib.models, "build_model", spy_build)
    monkeypatch.setattr(kdlib.train, "fit", spy_fit)
    monkeypatch.setattr(kdlib.train, "predict", spy_predict)
    config = ProtocolConfig(methods=("majority", "eog_only", "teacher"), tasks=("valence",), **FAST)
    results = run_protocol(spec, config, out=tmp_path / "run", progress=False)
    n_units = 2 * 2  # subjects x folds
    teachers = [b for b in built if b[0] == "teacher"]
    assert len(teachers) == n_units and len({t[1] for t in teachers}) == n_units  # a new teacher per fold
    assert len(fitted) == len(predicted) == 2 * n_units
    for (train, val), test in zip(fitted, predicted):
        assert not (test & train) and not (test & val) and not (train & val)
    assert set(results["method"]) == {"majority", "eog_only", "teacher"} and len(results) == 3 * n_units


def test_students_are_distilled_from_the_teacher_of_their_own_fold(spec, tmp_path, monkeypatch):
    import kdlib.distill
    import kdlib.models

    teachers, used = [], []
    build, distill = kdlib.models.build_model, kdlib.distill.distill

    def spy_build(name, config):
        model = build(name, config)
        if name == "teacher":
            teachers.append(model)
        return model

    def spy_distill(teacher, train, val, task, config, *args, **kwargs):
        used.append((config.method, teacher))
        return distill(teacher, train, val, task, config, *args, **kwargs)

    monkeypatch.setattr(kdlib.models, "build_model", spy_build)
    monkeypatch.setattr(kdlib.distill, "distill", spy_distill)
    config = ProtocolConfig(methods=("teacher", "scratch", "v1", "v2"), tasks=("arousal",), **FAST)
    results = run_protocol(spec, config, out=tmp_path / "students", progress=False)
    assert len(teachers) == 4 and len(used) == 3 * 4
    for k, teacher in enumerate(teachers):  # units run in order: fold k's students use teacher k
        assert [m for m, t in used if t is teacher] == ["scratch", "v1", "v2"]
    assert set(results["method"]) == {"teacher", "scratch", "v1", "v2"}
    assert results["acc_trial"].between(0, 1).all()


def test_labels_independent_of_signals_give_chance(spec, tmp_path):
    config = ProtocolConfig(methods=evaluate.METHODS, shuffle_labels=True, seeds=(3,), **FAST)
    results = run_protocol(spec, config, out=tmp_path / "control", progress=False)
    n_trials = int(results.groupby(["task", "subject", "fold"])["n_trials"].first().groupby("task").sum().min())
    lo, hi = evaluate.chance_interval(n_trials, level=1 - 0.01 / 18)  # 99 %, Bonferroni over 2 tasks x 9 methods
    pooled = results.groupby(["task", "method"]).apply(
        lambda g: np.average(g["acc_trial"], weights=g["n_trials"]), include_groups=False)
    assert ((pooled >= lo) & (pooled <= hi)).all(), pooled


def test_resume_after_interruption_gives_the_same_table(spec, tmp_path, monkeypatch):
    config = ProtocolConfig(methods=("majority", "eog_only"), tasks=("arousal",), **FAST)
    clean = run_protocol(spec, config, out=tmp_path / "clean", progress=False)
    calls = {"n": 0}
    real = evaluate.run_unit

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "run_unit", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    assert len(list((tmp_path / "resumed" / "folds").glob("*.csv"))) == 2
    monkeypatch.setattr(evaluate, "run_unit", real)
    ran = []
    monkeypatch.setattr(evaluate, "run_unit", lambda s, u, *a, **k: ran.append(u.key) or real(s, u, *a, **k))
    resumed = run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    assert len(ran) == 2  # only the two unfinished units
    pd.testing.assert_frame_equal(_stable(resumed), _stable(clean))


def test_run_folder_refuses_another_configuration(spec, tmp_path):
    config = ProtocolConfig(methods=("majority",), tasks=("valence",), **FAST)
    run_protocol(spec, config, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_protocol(spec, ProtocolConfig(methods=("majority",), tasks=("valence",), seeds=(9,), **FAST),
                     out=tmp_path / "run", progress=False)


def test_parallel_and_dask_give_the_same_results(spec, tmp_path):
    distributed = pytest.importorskip("distributed")
    config = ProtocolConfig(methods=("majority", "eog_only"), tasks=("valence",), **FAST)
    local = run_protocol(spec, config, out=tmp_path / "local", progress=False)
    parallel = run_protocol(spec, config, out=tmp_path / "parallel", n_jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask = run_protocol(spec, config, out=tmp_path / "dask", backend="dask", scheduler=cluster.scheduler_address,
                            progress=False)
    pd.testing.assert_frame_equal(_stable(parallel), _stable(local))
    pd.testing.assert_frame_equal(_stable(dask), _stable(local))


def test_leave_one_subject_out_units(spec, tmp_path):
    config = ProtocolConfig(protocol="loso", methods=("majority",), tasks=("valence",), **FAST)
    results = run_protocol(spec, config, out=tmp_path / "loso", progress=False)
    assert sorted(results["subject"]) == ["s01", "s02"] and (results["n_trials"] == 12).all()


def test_summaries_and_paired_tests():
    rng = np.random.default_rng(0)
    rows = []
    for s in range(8):
        for method, shift in (("scratch", 0.0), ("v3", 0.08)):
            for fold in range(2):
                acc = 0.55 + shift + rng.normal(0, 0.01)
                rows.append(dict(task="valence", subject=f"s{s:02d}", fold=fold, method=method, acc_trial=acc,
                                 f1_trial=acc, acc_window=acc, f1_window=acc, majority_trial=0.5,
                                 majority_window=0.5))
    results = pd.DataFrame(rows)
    per_subject, overall = evaluate.summarize(results)
    assert len(per_subject) == 16 and set(overall["n_subjects"]) == {8}
    assert overall.set_index("method").loc["v3", "acc_trial_mean"] == pytest.approx(0.63, abs=0.01)
    tests = evaluate.paired_tests(results)
    row = tests.iloc[0]
    assert row["method"] == "scratch" and row["mean_diff"] == pytest.approx(0.08, abs=0.01)
    assert row["p_t"] < 1e-4 and row["p_wilcoxon"] < 0.01 and row["cohen_dz"] > 3


def test_paired_tests_are_nan_without_warnings_when_the_differences_do_not_vary():
    rows = [dict(task="valence", subject=f"s{s:02d}", fold=0, method=method, acc_trial=acc, f1_trial=acc,
                 acc_window=acc, f1_window=acc, majority_trial=0.5, majority_window=0.5)
            for s in range(3) for method, acc in (("scratch", 0.5 + 0.1 * s), ("v1", 0.6 + 0.1 * s),
                                                  ("v3", 0.6 + 0.1 * s))]  # v3 - scratch: 0.1 each time, v3 - v1: 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tests = evaluate.paired_tests(pd.DataFrame(rows)).set_index("method")
    assert tests.loc["scratch", "mean_diff"] == pytest.approx(0.1) and tests.loc["v1", "mean_diff"] == 0
    assert tests[["t", "p_t", "cohen_dz"]].isna().all().all()


def test_protocol_config_errors():
    with pytest.raises(ValueError, match="unknown method"):
        ProtocolConfig(methods=("v9",))
    with pytest.raises(ValueError, match="unknown protocol"):
        ProtocolConfig(protocol="random")
    with pytest.raises(ValueError, match="tasks"):
        ProtocolConfig(tasks=())


# --- seeds ------------------------------------------------------------------------------------------

def test_seeds_are_units_of_their_own_and_resume_per_seed(spec, tmp_path, monkeypatch):
    config = ProtocolConfig(methods=("majority", "eog_only"), tasks=("valence",), seeds=(0, 1), **FAST)
    clean = run_protocol(spec, config, out=tmp_path / "clean", progress=False)
    assert sorted(set(clean["seed"])) == [0, 1] and len(clean) == 2 * 2 * 2 * 2  # seeds x subjects x folds x methods
    by_seed = {s: t.drop(columns=["seed", "seconds"]).reset_index(drop=True) for s, t in clean.groupby("seed")}
    assert not by_seed[0].equals(by_seed[1]), "another seed must change folds, weights or batch order"
    real, calls = evaluate.run_unit, {"n": 0}

    def dies_on_sixth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "run_unit", dies_on_sixth)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    ran = []
    monkeypatch.setattr(evaluate, "run_unit", lambda s, u, *a, **k: ran.append(u) or real(s, u, *a, **k))
    resumed = run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    assert len(ran) == 3 and all(u.seed == 1 for u in ran)  # seed 0 finished first; only seed 1's rest reruns
    pd.testing.assert_frame_equal(_stable(resumed), _stable(clean))


@pytest.mark.parametrize("bad, match", [(dict(seeds=()), "seeds"), (dict(seeds=(-1,)), "seeds"),
                                        (dict(seeds=(1, 1)), "once"), (dict(epochs=0), "epochs"),
                                        (dict(subjects=("s01", "s01")), "once"),
                                        (dict(protocol="loso", subjects=("s01",)), "at least 2"),
                                        (dict(quiz_size=0.0), "quiz"), (dict(quiz_size=1.5), "quiz_size")])
def test_protocol_config_refuses_bad_settings_before_anything_runs(bad, match):
    settings = {**FAST, **bad}
    with pytest.raises(ValueError, match=match):
        ProtocolConfig(**settings)


# --- the quiz split inside the protocol -------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["trial_kfold", "loso"])
def test_every_unit_has_a_quiz_disjoint_from_teaching_and_validation(spec, protocol):
    from kdlib.data.splits import Fold
    config = ProtocolConfig(protocol=protocol, methods=("majority",), seeds=(0, 5), **FAST)
    ws = spec.load()
    for unit in evaluate.plan_units(ws, config):
        mine, fold = evaluate._fold_of(ws, unit, config)
        sides = {side: set(mine.groups[getattr(fold, side)]) for side in Fold.SIDES}
        assert sides["quiz"], unit
        for other in ("train", "val", "test"):
            assert not sides["quiz"] & sides[other], (unit, other)


def test_methods_of_a_unit_share_teaching_windows_and_only_v3_reads_the_quiz(spec, tmp_path, monkeypatch):
    import kdlib.distill
    seen = []
    real = kdlib.distill.distill

    def spy(teacher, train, val, task, config, *args, quiz=None, **kwargs):
        trials = lambda w: frozenset(zip(w.subject, w.trial.tolist()))  # noqa: E731
        seen.append((config.method, trials(train), None if quiz is None else trials(quiz)))
        return real(teacher, train, val, task, config, *args, quiz=quiz, **kwargs)

    monkeypatch.setattr(kdlib.distill, "distill", spy)
    config = ProtocolConfig(methods=("teacher", "scratch", "v2", "v3"), tasks=("valence",),
                            subjects=("s01",), **FAST)
    results = run_protocol(spec, config, out=tmp_path / "quiz", progress=False)
    per_unit = [seen[i:i + 3] for i in range(0, len(seen), 3)]
    for unit in per_unit:
        assert len({train for _, train, _ in unit}) == 1, "every student trains on the same teaching windows"
        v3_quiz = unit[-1][2]
        assert unit[-1][0] == "v3" and v3_quiz and not v3_quiz & unit[0][1]
        assert unit[0][2] is None or unit[0][0] == "v3"
    v3 = results[results["method"] == "v3"]
    assert (v3["feedback_steps"] >= 0).all() and v3["teacher_dp"].notna().all()
    assert results[results["method"] != "majority"].filter(like="n_quiz_trials").gt(0).all().all()
    students = results[results["method"].isin(["scratch", "v2", "v3"])]
    assert np.allclose(students[["share_ce", "share_kd", "share_feat"]].sum(axis=1), 1.0)


# --- the shuffled-label control -----------------------------------------------------------------------

def test_shuffled_permutations_differ_across_subjects_and_ignore_who_else_is_loaded(spec):
    ws = spec.load()
    both = evaluate.shuffle_trial_labels(ws, seed=2)
    for subject in ws.subjects():
        alone = evaluate.shuffle_trial_labels(spec.load([subject]), seed=2)
        assert np.array_equal(alone.ratings, both.ratings[both.subject == subject])
    perms = [evaluate.label_permutation(2, s, 40) for s in ("s01", "s02", "s03")]
    assert not np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[1], perms[2])
    assert np.array_equal(evaluate.label_permutation(2, "s01", 40), perms[0])
    assert not np.array_equal(evaluate.label_permutation(3, "s01", 40), perms[0])


def _video_ordered(n_subjects: int = 12, n_trials: int = 40):
    """A DEAP-like WindowSet (one window per trial): trials in video order, every subject rates a
    video alike (videos 1-20 high valence, 21-40 low)."""
    from kdlib.data.windows import WindowSet
    n = n_subjects * n_trials
    video_rating = np.where(np.arange(n_trials) < n_trials // 2, 7.5, 2.5)
    ratings = np.tile(video_rating, n_subjects)[:, None].repeat(4, axis=1).astype(np.float32)
    return WindowSet(eeg=np.zeros((n, 1, 2), np.float32), eog=np.zeros((n, 1, 2), np.float32), ratings=ratings,
                     subject=np.repeat([f"s{i + 1:02d}" for i in range(n_subjects)], n_trials),
                     trial=np.tile(np.arange(1, n_trials + 1), n_subjects), start_s=np.zeros(n), fs=128.0,
                     eeg_channels=("a",), eog_channels=("b",))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_control_lands_at_chance_on_video_ordered_data(seed):
    """An oracle that knows every true label, scored on the shuffled labels: what any model that
    learned the real signal would reach in the control. Loaded one subject at a time (as the
    within-subject protocol does), the mean over subjects must sit inside the chance band of a
    mean over subjects, and subjects must not all agree by the same amount."""
    ws = _video_ordered()
    agreement = []
    for subject in ws.subjects():
        mine = ws.subset(np.flatnonzero(ws.subject == subject))
        shuffled = evaluate.shuffle_trial_labels(mine, seed)
        agreement.append(np.mean(shuffled.labels("valence") == mine.labels("valence")))
    lo, hi = evaluate.chance_interval(len(ws), level=0.99)  # equal trials per subject: Binomial(S * n) / (S * n)
    assert lo <= np.mean(agreement) <= hi, agreement
    assert np.ptp(agreement) > 0, "one permutation for every subject: the control is off chance alike everywhere"


def test_loso_uses_only_the_declared_subjects(tmp_path, monkeypatch):
    root = tmp_path / "three"
    synthetic.write_dataset(root, synthetic.SynthConfig(n_subjects=3, n_trials=12), progress=False)
    spec3 = DataSpec(dataset="synthetic", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    seen = []
    real = evaluate._fold_of
    monkeypatch.setattr(evaluate, "_fold_of", lambda ws, u, c: seen.append(set(ws.subjects())) or real(ws, u, c))
    config = ProtocolConfig(protocol="loso", methods=("majority",), tasks=("valence",),
                            subjects=("s01", "s03"), **FAST)
    results = run_protocol(spec3, config, out=tmp_path / "loso", progress=False)
    assert sorted(results["subject"]) == ["s01", "s03"] and all(s == {"s01", "s03"} for s in seen)


def test_summaries_and_paired_tests_average_seeds_within_subjects():
    from scipy import stats as sps

    rng = np.random.default_rng(1)
    rows = [dict(task="valence", subject=f"s{s:02d}", fold=fold, seed=seed, method=method, acc_trial=acc,
                 f1_trial=acc, acc_window=acc, f1_window=acc, majority_trial=0.5, majority_window=0.5)
            for s in range(6) for seed in (0, 1, 2) for method, shift in (("scratch", 0.0), ("v3", 0.05))
            for fold in range(2) for acc in [0.55 + shift + 0.02 * seed + rng.normal(0, 0.01)]]
    results = pd.DataFrame(rows)
    per_subject, overall = evaluate.summarize(results)
    assert len(per_subject) == 12 and (per_subject["n_seeds"] == 3).all()  # one row per subject, not per seed
    row = overall.set_index("method").loc["v3"]
    assert row["n_subjects"] == 6 and row["n_seeds"] == 3
    assert row["acc_trial_seed_sd"] == pytest.approx(0.02, abs=0.005)  # the seeds move every subject by 0.02
    x = per_subject.loc[per_subject["method"] == "v3", "acc_trial"]
    assert (row["acc_trial_ci_low"], row["acc_trial_ci_high"]) == pytest.approx(
        sps.t.interval(0.95, 5, loc=x.mean(), scale=sps.sem(x)))
    tests = evaluate.paired_tests(results)
    wide = per_subject.pivot(index="subject", columns="method", values="acc_trial")
    t, p = sps.ttest_rel(wide["v3"], wide["scratch"])
    (r,) = [r for _, r in tests.iterrows()]
    assert r["n_subjects"] == 6 and r["t"] == pytest.approx(t) and r["p_holm"] == pytest.approx(p)  # one test
    assert r["ci_low"] > 0 and not r["inside_noise"] and r["seed_sd"] < 0.01  # the seed shift cancels


def test_data_spec_round_trips_through_a_run_record(spec, tmp_path):
    import json
    from dataclasses import asdict
    record = json.loads(json.dumps(asdict(spec)))  # what config.json holds: tuples became lists
    assert DataSpec.from_record(record) == spec


# --- the fold-batched trainer in the protocol -------------------------------------------------------

BATCHED = dict(FAST, trainer="batched")


def test_batched_runs_keep_the_table_and_train_each_fold_on_its_own_windows(spec, tmp_path, monkeypatch):
    import kdlib.batched

    seen, real = [], kdlib.batched.fit_batched

    def spy(models, trains, vals, task, config, **kw):
        seen.append([(set(zip(t.subject, t.trial)), set(zip(v.subject, v.trial))) for t, v in zip(trains, vals)])
        return real(models, trains, vals, task, config, **kw)

    monkeypatch.setattr(kdlib.batched, "fit_batched", spy)
    methods = ("majority", "eog_only", "teacher", "scratch", "v2", "v3")
    batched = run_protocol(spec, ProtocolConfig(methods=methods, tasks=("valence",), **BATCHED),
                           out=tmp_path / "batched", progress=False)
    sequential = run_protocol(spec, ProtocolConfig(methods=methods, tasks=("valence",), **FAST),
                              out=tmp_path / "sequential", progress=False)
    assert list(batched.columns) == list(sequential.columns)
    keys = ["task", "subject", "fold", "seed", "method", "n_windows", "n_trials", "n_teach_trials"]
    pd.testing.assert_frame_equal(batched[keys], sequential[keys])
    assert len(seen) == 2 * 4  # subjects x (eog_only, teacher, scratch, v2): v3 and majority are not stacked
    assert all(len(call) == 2 for call in seen)  # both folds of a subject in one stack
    for call in seen:
        for train, val in call:
            assert not train & val
        assert call[0][0] != call[1][0]  # each member its own fold's teaching trials


def test_batched_resume_after_interruption_gives_the_same_table(spec, tmp_path, monkeypatch):
    config = ProtocolConfig(methods=("majority", "eog_only", "teacher", "v1"), tasks=("arousal",), seeds=(0, 1),
                            **BATCHED)
    clean = run_protocol(spec, config, out=tmp_path / "clean", progress=False)
    real, calls = evaluate.run_batch, {"n": 0}

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "run_batch", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    assert len(list((tmp_path / "resumed" / "folds").glob("*.csv"))) == 2 * 2  # two whole batches, no half one
    ran = []
    monkeypatch.setattr(evaluate, "run_batch", lambda s, units, *a, **k: ran.append(units) or real(s, units, *a, **k))
    resumed = run_protocol(spec, config, out=tmp_path / "resumed", progress=False)
    assert [len(b) for b in ran] == [2, 2]  # only the unfinished batches, each whole
    assert all(u.seed == 1 for b in ran for u in b)
    pd.testing.assert_frame_equal(_stable(resumed), _stable(clean))


def test_batched_parallel_and_dask_give_the_same_results(spec, tmp_path):
    distributed = pytest.importorskip("distributed")
    config = ProtocolConfig(methods=("majority", "teacher"), tasks=("valence",), **BATCHED)
    local = run_protocol(spec, config, out=tmp_path / "local", progress=False, device="cpu")
    parallel = run_protocol(spec, config, out=tmp_path / "parallel", n_jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask = run_protocol(spec, config, out=tmp_path / "dask", backend="dask", scheduler=cluster.scheduler_address,
                            progress=False)
    pd.testing.assert_frame_equal(_stable(parallel), _stable(local))
    pd.testing.assert_frame_equal(_stable(dask), _stable(local))


def test_batches_group_the_folds_of_a_subject_task_and_seed(spec):
    ws = spec.load()
    units = evaluate.plan_units(ws, ProtocolConfig(seeds=(0, 1), **BATCHED))
    batches = evaluate.plan_batches(units, ProtocolConfig(seeds=(0, 1), **BATCHED))
    assert sum(len(b) for b in batches) == len(units) and len(batches) == 2 * 2 * 2  # seeds x tasks x subjects
    assert all(len({(u.task, u.subject, u.seed) for u in b}) == 1 for b in batches)
    assert all(len(b) == 1 for b in evaluate.plan_batches(units, ProtocolConfig(seeds=(0, 1), **FAST)))
    with pytest.raises(ValueError, match="trainer"):
        ProtocolConfig(trainer="fast")


def test_an_unavailable_device_fails_before_anything_runs(spec, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA was requested"):
        run_protocol(spec, ProtocolConfig(methods=("majority",), **BATCHED), out=tmp_path / "gpu", device="cuda",
                     progress=False)
    assert not list((tmp_path / "gpu").glob("folds/*.csv"))


def test_auto_trainer_stacks_on_cuda_only(monkeypatch):
    import torch

    import kdlib.repro

    assert evaluate.resolve_trainer("sequential", "cpu") == "sequential"
    assert evaluate.resolve_trainer("batched", "cpu") == "batched"
    assert evaluate.resolve_trainer("auto", "cpu") == "sequential"
    monkeypatch.setattr(kdlib.repro, "choose_device", lambda prefer="auto": torch.device("cuda"))
    assert evaluate.resolve_trainer("auto", "auto") == "batched"


def test_trial_votes_average_probabilities_and_scores_use_them():
    prob = np.array([[0.1, 0.9], [0.55, 0.45], [0.55, 0.45], [0.3, 0.7], [0.8, 0.2]])  # trial 5: a sure window wins
    groups = np.array([5, 5, 5, 2, 7])
    trials, votes, inverse = evaluate.trial_votes(prob, groups)
    assert trials.tolist() == [2, 5, 7] and votes.tolist() == [1, 1, 0] and trials[inverse].tolist() == groups.tolist()
    y = np.array([1, 1, 1, 0, 0])  # trial 2 is wrong, 5 and 7 right
    assert evaluate.scores(prob, y, groups, 0)["acc_trial"] == pytest.approx(2 / 3)
